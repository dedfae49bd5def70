# Two entry points for a fresh machine: `make run` (quickstart) and `make test`. Each creates or
# refreshes .venv and installs the package first. torch==2.13.0 is pinned because that CPU build
# is what this project's machines provide (a bare `torch` may pull a multi-GB CUDA build). The
# optional extras (diffusers, tensorboard) are installed too, so that make test runs their tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,diffusers,tensorboard]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/diffusiontools train configs/quickstart.ini --overwrite
	$(BIN)/diffusiontools sample runs/quickstart -n 64 --trajectory
	@echo "quickstart outputs in runs/quickstart/: sample_grid + samples.npz (samples/), learning_curve.png, metrics.csv"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

clean:
	rm -rf $(VENV) runs
