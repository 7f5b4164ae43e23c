"""The figure step of eval/evaluate.py: one browser per PNG (before) against one browser session for all (now).

    python eval/bench_figures.py                    # the shipped adapter's 7 figures, 3 rounds, alternating

Both write the same figures of an eval_results.json (default: space/default-adapter's) to a temporary
folder: "before" as evaluate.py did until issue 11 (HTML with plotly.js from its CDN, then
`fig.write_image` per figure: kaleido starts a Chromium each time); "now" is `plots.write_figures`
(HTML beside one plotly.min.js, then every PNG through `plotly.io.write_images`). Medians of the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from finsent.eval import plots, report

DEFAULT = Path(__file__).resolve().parents[1] / "space" / "default-adapter" / report.RESULTS_FILE


def before(figures: dict) -> None:
    for stem, fig in figures.items():
        stem.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(stem.with_name(stem.name + ".html"), include_plotlyjs="cdn")
        fig.write_image(stem.with_name(stem.name + ".png"), format="png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(DEFAULT), help="an eval_results.json")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from finsent.train.bench_throughput import machine

    results = json.loads(Path(args.results).read_text())
    times = {"before": [], "now": []}
    for _ in range(args.rounds):
        for name, write in (("before", before), ("now", plots.write_figures)):
            with tempfile.TemporaryDirectory() as tmp:
                figures = report.evaluation_figures(results, Path(tmp))
                start = time.perf_counter()
                write(figures)
                times[name].append(time.perf_counter() - start)
                pngs = len(list(Path(tmp, report.FIGURES_DIR).glob("*.png")))
            print(f"{name}: {times[name][-1]:.2f} s for {len(figures)} figures ({pngs} PNG)", flush=True)
    print(f"\n{json.dumps(machine())}\n")
    print("| figure step | median s | rounds (s) |\n| --- | ---: | --- |")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
