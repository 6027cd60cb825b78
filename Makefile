# whisper-align: `make demo` sets everything up and aligns the bundled sample; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# openai-whisper is only a test reference; --no-deps avoids its GPU-only triton requirement
	$(BIN)/pip install -q --no-deps openai-whisper==20250625
	touch $(STAMP)

demo: setup
	$(BIN)/whisper-align demo

# lint and type checks first (seconds), then the tests
test: setup lint
	sh tools/ensure_chromium.sh  # the viewer's browser tests need Chromium (apt-get, when root)
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy

# each prints a table and writes benchmarks/results/*.json (they take minutes to an hour on a laptop CPU)
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/calibrate.py --stride 3
	$(BIN)/python benchmarks/accuracy.py --sets timit-dev
	$(BIN)/python benchmarks/accuracy.py --sets festival --stride 3 --offset 1
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/longform.py
	$(BIN)/python benchmarks/heads_split.py
	$(BIN)/python benchmarks/transcription.py --part accuracy
	$(BIN)/python benchmarks/transcription.py --part speed --threads 1 --runs 5
	$(BIN)/python benchmarks/report.py --write

clean:
	rm -rf $(VENV) .pytest_cache
