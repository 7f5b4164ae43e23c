"""eval/bench_classify.py end to end on the tiny Phi: every variant and lever runs, the JSON holds what it reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from finsent.eval import bench_classify


def test_help_runs():
    out = subprocess.run([sys.executable, "eval/bench_classify.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(flag in out.stdout for flag in ("--rows", "--pipeline_rows", "--skip_pipeline", "--levers", "--json"))


def test_headlines_are_distinct_fictional_and_seeded():
    from finsent.train.data import text_key

    headlines = bench_classify.make_headlines(2000, seed=3)
    assert len({text_key(h) for h in headlines}) == 2000  # distinct as classify compares them: no repeats to skip
    assert headlines == bench_classify.make_headlines(2000, seed=3)
    assert headlines != bench_classify.make_headlines(2000, seed=4)


def test_bench_classify_tiny(tiny_phi, evaluated, tmp_path):
    out = tmp_path / "bench.json"
    assert bench_classify.main([
        "--base_model", str(tiny_phi), "--adapter", str(evaluated),
        "--rows", "40", "--app_rows", "12", "--pipeline_rows", "3", "--lever_rows", "16", "--emulated_rows", "8",
        "--matmul_size", "256", "--matmul_reps", "2", "--json", str(out),
    ]) == 0
    results = json.loads(out.read_text())

    assert [name[:3] for name in results["variants"]] == ["(a)", "(b)", "(c)"]
    assert [r["rows"] for r in results["variants"].values()] == [40, 12, 3]
    assert set(results["ceilings"]) >= {"bfloat16", "float32"}
    assert all(c["tflops"] > 0 for c in results["ceilings"].values())
    assert results["peak_rss_mb"] > 0
    assert len(results["levers"]) == 9  # shipped, batch 64/128/256, chunk_rows 512, no prefix, 1 thread, dtype, explain

    # F = 2·N·(t + c) + 4·L·A·Σctx + 2·d·V·(1 + c), recomputed from the JSON's own fields
    f = results["flops"]
    assert f["linear_params"] > 0 and f["scored_tokens"] > 0 and f["context_sum"] >= f["scored_tokens"]
    flops = (2 * f["linear_params"] * (f["scored_tokens"] + f["continuation_tokens"])
             + 4 * f["layers"] * f["attention_width"] * f["context_sum"]
             + 2 * f["hidden"] * f["vocab"] * (1 + f["continuation_tokens"]))
    assert f["per_headline"] == pytest.approx(flops)
    for entry in [*results["variants"].values(), *results["levers"].values()]:
        assert entry["headlines_per_s"] > 0 and entry["seconds"] > 0
        assert entry["headlines_per_s"] == pytest.approx(entry["rows"] / entry["seconds"])
        ceiling = results["ceilings"][entry["dtype"]]["tflops"] * 1e12
        assert entry["share_of_ceiling"] == pytest.approx(entry["headlines_per_s"] * flops / ceiling)
    assert next(iter(results["levers"].values()))["vs_shipped"] == 1
