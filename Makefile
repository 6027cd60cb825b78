# whisper-align: `make demo` sets everything up and aligns the bundled sample; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

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

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache
