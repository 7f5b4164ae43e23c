"""The evaluation figures written to files: HTML and PNG (the figures themselves are in space/figures.py).

    from finsent.eval.plots import confusion_heatmap, per_class_bars, write_figure
    write_figure(per_class_bars(metrics), Path("runs/demo/per_class"))  # per_class.html + per_class.png

`metrics` is the dict from `finsent.eval.metrics.compute_metrics`.

PNG export goes through kaleido 1.x, which drives a Chrome/Chromium found by
`choreographer` (the `BROWSER_PATH` variable, then `PATH`, then the usual places
such as `/usr/bin/chromium`). On Debian, `apt-get install -y --no-install-recommends
chromium` is all it takes; choreographer passes `--no-sandbox` itself, so it runs as root too.
Without a browser the HTML is still written and one warning says how to fix it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from finsent.space.figures import before_after, confusion_heatmap, per_class_bars, reliability_diagram

logger = logging.getLogger(__name__)

__all__ = ["before_after", "confusion_heatmap", "find_browser", "per_class_bars", "reliability_diagram", "write_figure",
           "write_figures", "write_atomic"]
INSTALL_BROWSER = (
    "install Debian's chromium package (apt-get install -y --no-install-recommends chromium), "
    "or set BROWSER_PATH to a Chrome/Chromium binary, or run `plotly_get_chrome`"
)


PLOTLY_JS = "plotly.min.js"  # written once per figures folder; every HTML figure there loads it


def write_figures(figures: dict[Path, go.Figure]) -> list[Path]:
    """Write `stem`.html for each {stem: figure} and, where a browser is available, every `stem`.png; return them.

    The HTML loads plotly.js from one `plotly.min.js` beside it (`include_plotlyjs="directory"`), so it
    opens offline, at a few KB a figure. The PNGs go through one browser session (kaleido's batch
    export, `plotly.io.write_images`), not one per figure, each under a temporary name renamed when
    all are done, so a failed export leaves no partial file: then one warning says why and how to
    fix it, and PNGs left by an earlier run are removed so they cannot be mistaken for these.
    """
    stems = {Path(stem): fig for stem, fig in figures.items()}
    written = []
    for stem, fig in stems.items():
        stem.parent.mkdir(parents=True, exist_ok=True)
        html = stem.with_name(stem.name + ".html")
        write_atomic(html, lambda tmp, fig=fig: fig.write_html(tmp, include_plotlyjs="directory"))
        written.append(html)
    pngs = [stem.with_name(stem.name + ".png") for stem in stems]
    parts = [png.with_name(f".{png.name}.{os.getpid()}.part") for png in pngs]
    try:
        export_pngs(list(stems.values()), parts)
        for part, png in zip(parts, pngs, strict=True):
            part.replace(png)
        written += pngs
    except Exception as e:  # whatever stops the optional PNGs, the HTML stands
        stale = [png.name for png in pngs if png.exists()]
        for png in pngs:
            png.unlink(missing_ok=True)
        logger.warning("%d PNG figure(s) not written (%s); %s%s", len(pngs), _first_line(e), _fix(),
                       f"; removed the stale {', '.join(stale)} of an earlier run" if stale else "")
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    logger.info("wrote %s", ", ".join(str(path) for path in written))
    return written


def export_pngs(figures: list[go.Figure], paths: list[Path], attempts: int = 3) -> None:
    """Each figure as a PNG at its path, in one browser session per attempt; a RuntimeError if some never came.

    kaleido returns a render's error rather than raising it (plotly drops it), and leaves no file: seen
    on a 2-core machine under load (which error, kaleido did not say; its 90 s limit per render is one
    candidate). The missing ones are tried again.
    """
    todo = list(range(len(figures)))
    for _ in range(attempts):
        pio.write_images([figures[i] for i in todo], [paths[i] for i in todo], format="png")
        todo = [i for i in todo if not paths[i].is_file()]
        if not todo:
            return
    raise RuntimeError(f"kaleido rendered {len(figures) - len(todo)} of {len(figures)} figures in {attempts} "
                       "attempts and gave no reason (on a loaded machine, a render over its 90 s limit, or a browser crash)")


def write_figure(fig: go.Figure, path_stem: Path) -> dict[str, Path]:
    """One figure: {"html": path, "png": path (where a browser is available)}; see write_figures."""
    return {path.suffix[1:]: path for path in write_figures({Path(path_stem): fig})}


class BrowserHelperError(ImportError):
    """kaleido's browser helper (choreographer) is installed but fails to import: a broken install, not a
    machine without a browser."""


def find_browser() -> str | None:
    """The Chrome/Chromium that kaleido would drive (kaleido's own search), or None when there is none.

    BrowserHelperError when kaleido's helper is installed but cannot be imported (a broken install)."""
    if importlib.util.find_spec("choreographer") is None:  # kaleido's dependency; absent without kaleido
        return None
    try:
        from choreographer.browsers import Chromium
    except ImportError as err:
        raise BrowserHelperError(f"kaleido's browser helper choreographer is installed but fails to import "
                                 f"({err}); reinstall it: pip install --force-reinstall 'kaleido>=1.0'") from err
    path = Chromium.find_browser(skip_local=False)  # BROWSER_PATH, PATH, typical paths, `plotly_get_chrome`'s copy
    return path if path and Path(path).is_file() else None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` beside `path`, then rename: a reader never sees half a file, a failure leaves none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")  # same folder, so the rename is atomic
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _fix() -> str:
    if importlib.util.find_spec("kaleido") is None:  # installed at all (importing it may fail on a broken helper)
        return "install kaleido (pip install 'kaleido>=1.0'), then a browser: " + INSTALL_BROWSER
    try:
        browser = find_browser()
    except BrowserHelperError as err:
        return str(err)
    if browser is None:
        if os.environ.get("BROWSER_PATH"):
            return f"BROWSER_PATH={os.environ['BROWSER_PATH']!r} is not a file: point it at a Chrome/Chromium binary or unset it"
        return "no Chrome/Chromium found: " + INSTALL_BROWSER
    return f"kaleido found the browser {browser}, so the export itself failed; BROWSER_PATH picks another browser"


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
