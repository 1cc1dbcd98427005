# Two commands for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench figures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## set up and train the default model: knobsim train --params 1e5
	$(BIN)/knobsim train --params 1e5

test: $(STAMP)  ## install test needs and run the whole suite (slow tests included)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests

bench: $(STAMP)  ## throughput and MFU against PyTorch (installs the optional torch extra)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/bench_train.py

figures: $(STAMP)  ## regenerate the README's pictures in docs/figures/ (~6 min on 2 cores; +9 min if the English quick sweep is not there)
	$(BIN)/python experiments/make_figures.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
