# sdaanet — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
export PIP_DISABLE_PIP_VERSION_CHECK := 1

FOLD ?= 0
SHOT ?= 1
DATA ?= pascal
ARGS ?=
CKPT ?=

.PHONY: help install test test-full lint demo train eval sweep clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python scripts/check_install.py
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install sdaanet (editable, dev extras, torch==2.13.0)

test: $(STAMP)  ## run the fast test suite (installs first if needed)
	$(BIN)/pytest -q --nbmake tests notebooks

test-full: $(STAMP)  ## run every test, including the slow ones (DDP, sweeps)
	$(BIN)/pytest -q --nbmake -m "slow or not slow" tests notebooks

lint: $(STAMP)  ## ruff check + format check
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

demo: $(STAMP)  ## train SD-AANet on the built-in synthetic dataset, evaluate 1-shot on novel classes
	$(BIN)/python -m sdaanet.demo $(ARGS)

train: $(STAMP)  ## train: make train FOLD=0 SHOT=1 DATA=pascal ARGS="..."
	$(BIN)/python -m sdaanet.train data=$(DATA) data.fold=$(FOLD) shot=$(SHOT) $(ARGS)

eval: $(STAMP)  ## evaluate a checkpoint: make eval CKPT=path/to.ckpt ARGS="..."
	@test -n "$(CKPT)" || { echo "error: CKPT is not set; run: make eval CKPT=logs/.../checkpoints/last.ckpt" >&2; exit 2; }
	$(BIN)/python -m sdaanet.eval ckpt_path=$(CKPT) $(ARGS)

sweep: $(STAMP)  ## Hydra multirun over folds 0-3 and an alpha/beta grid
	$(BIN)/python -m sdaanet.train -m data=$(DATA) shot=$(SHOT) data.fold=0,1,2,3 model.alpha=10,50 model.beta=0.5,1.0 $(ARGS)

clean:  ## remove caches and logs (keeps .venv and data/)
	rm -rf .pytest_cache .ruff_cache logs outputs multirun
