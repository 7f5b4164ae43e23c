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

import logging
import os
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go

from finsent.space.figures import before_after, confusion_heatmap, per_class_bars, reliability_diagram

logger = logging.getLogger(__name__)

__all__ = ["before_after", "confusion_heatmap", "find_browser", "per_class_bars", "reliability_diagram", "write_figure",
           "write_atomic"]
INSTALL_BROWSER = (
    "install Debian's chromium package (apt-get install -y --no-install-recommends chromium), "
    "or set BROWSER_PATH to a Chrome/Chromium binary, or run `plotly_get_chrome`"
)


def write_figure(fig: go.Figure, path_stem: Path) -> dict[str, Path]:
    """Write `path_stem`.html and, where a browser is available, `path_stem`.png; return what was written.

    The HTML loads plotly.js from its CDN (`include_plotlyjs="cdn"`): a few KB instead of
    ~4.6 MB self-contained, but it needs the internet to display. The PNG is written under
    a temporary name and renamed, so a failed export never leaves a partial file; when
    export fails, one warning says why and how to fix it, and a PNG left by an earlier
    run is removed so it cannot be mistaken for this figure.
    """
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    html = path_stem.with_name(path_stem.name + ".html")
    png = path_stem.with_name(path_stem.name + ".png")
    write_atomic(html, lambda tmp: fig.write_html(tmp, include_plotlyjs="cdn"))
    written = {"html": html}
    try:
        write_atomic(png, lambda tmp: fig.write_image(tmp, format="png"))
    except Exception as e:  # whatever stops the optional PNG, the HTML stands
        stale = png.exists()
        png.unlink(missing_ok=True)
        logger.warning(
            "%s not written (%s); %s%s",
            png,
            _first_line(e),
            _fix(),
            f"; removed the stale {png.name} of an earlier run" if stale else "",
        )
    else:
        written["png"] = png
    logger.info("wrote %s", ", ".join(str(path) for path in written.values()))
    return written


def find_browser() -> str | None:
    """The Chrome/Chromium that kaleido would drive (kaleido's own search), or None when there is none."""
    try:
        from choreographer.browsers import Chromium  # kaleido's dependency; absent without kaleido
    except ImportError:
        return None
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
    try:
        import kaleido  # noqa: F401 - only whether it is installed
    except ImportError:
        return "install kaleido (pip install 'kaleido>=1.0'), then a browser: " + INSTALL_BROWSER
    browser = find_browser()
    if browser is None:
        if os.environ.get("BROWSER_PATH"):
            return f"BROWSER_PATH={os.environ['BROWSER_PATH']!r} is not a file: point it at a Chrome/Chromium binary or unset it"
        return "no Chrome/Chromium found: " + INSTALL_BROWSER
    return f"kaleido found the browser {browser}, so the export itself failed; BROWSER_PATH picks another browser"


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
