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
MODE ?= binary
DATA_ROOT ?=
SBD ?=
WORKERS ?= 4
TABLE ?=
FOLDS ?= 0,1,2,3
ALPHAS ?= 10,50
BETAS ?= 0.5,1.0
RUNS ?=
ifndef SWEEP_DIR
SWEEP_DIR := logs/sweep/$(shell date +%Y-%m-%d_%H-%M-%S)
endif

.PHONY: help install test test-full lint demo train eval sweep table report bench complexity paper-doc data-pascal data-coco data-fss1000 data-folder clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python scripts/check_install.py
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install sdaanet (editable, dev extras, torch==2.13.0)

test: $(STAMP)  ## run the fast test suite (installs first if needed)
	$(BIN)/pytest -q --durations=15 --nbmake --nbmake-kernel=python3 tests notebooks

test-full: $(STAMP)  ## run every test, including the slow ones (DDP, sweeps)
	$(BIN)/pytest -q --durations=15 --nbmake --nbmake-kernel=python3 -m "slow or not slow" tests notebooks

lint: $(STAMP)  ## ruff check + format check
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench

demo: $(STAMP)  ## train + evaluate SD-AANet on the synthetic dataset (MODE=multiclass: 5-way)
	$(BIN)/python -m sdaanet.demo $(if $(filter multiclass,$(MODE)),--multiclass) $(ARGS)

train: $(STAMP)  ## train: make train FOLD=0 SHOT=1 DATA=pascal ARGS="..."
	$(BIN)/python -m sdaanet.train data=$(DATA) data.fold=$(FOLD) shot=$(SHOT) $(ARGS)

eval: $(STAMP)  ## evaluate a checkpoint: make eval CKPT=path/to.ckpt ARGS="..."
	@test -n "$(CKPT)" || { echo "error: CKPT is not set; run: make eval CKPT=logs/.../checkpoints/last.ckpt" >&2; exit 2; }
	$(BIN)/python -m sdaanet.eval "ckpt_path='$(CKPT)'" $(ARGS)

complexity: $(STAMP)  ## Table III: params, FPS, peak memory of baseline vs SD-AANet (ARGS="complexity.size=321")
	$(BIN)/python -m sdaanet.complexity $(ARGS)

paper-doc: $(STAMP)  ## regenerate docs/reproducing.md's "Every cell" section from the experiments' paper: nodes
	$(BIN)/python scripts/paper_tables.py --write

sweep: $(STAMP)  ## Hydra multirun over folds 0-3 (FOLDS=0,1: means over those, labelled) and an alpha/beta grid, ending with its report and heatmap (exit status: failed jobs)
	status=0; $(BIN)/python -m sdaanet.train -m data=$(DATA) shot=$(SHOT) data.fold=$(FOLDS) model.alpha=$(ALPHAS) model.beta=$(BETAS) "hydra.sweep.dir='$(SWEEP_DIR)'" $(ARGS) || status=$$?; \
	  test ! -d "$(SWEEP_DIR)" || $(BIN)/sdaanet-report "$(SWEEP_DIR)"; exit $$status

table: $(STAMP)  ## one paper table end to end: make table TABLE=IV [ARGS="data=synthetic debug=tiny": plumbing only, labelled not a result]
	@test -n "$(TABLE)" || { echo "error: TABLE is not set; run: make table TABLE=IV (one of I, II, IV, V, VI, VII)" >&2; exit 2; }
	$(BIN)/sdaanet-table $(TABLE) $(ARGS)

report: $(STAMP)  ## the table of evaluation records: make report RUNS="logs/train/multiruns/<dir> ..."
	@test -n "$(RUNS)" || { echo "error: RUNS is not set; run: make report RUNS=logs/train/multiruns/<dir>" >&2; exit 2; }
	$(BIN)/sdaanet-report $(RUNS)

bench: $(STAMP)  ## benchmarks (bench/, JSON in logs/bench/): loader throughput; model speed and memory, plain vs fast
	$(BIN)/python bench/data_loader.py
	$(BIN)/python bench/model.py $(ARGS)

define need_root
	@test -n "$(DATA_ROOT)" || { echo "error: DATA_ROOT is not set; run: make $@ DATA_ROOT=path/to/$(1)" >&2; exit 2; }
endef

data-pascal: $(STAMP)  ## PASCAL-5i lists/labels: make data-pascal DATA_ROOT=VOC2012 [SBD=.../dataset]
	$(call need_root,VOC2012)
	$(BIN)/sdaanet-data pascal --root $(DATA_ROOT) $(if $(SBD),--sbd $(SBD)) $(ARGS)

data-coco: $(STAMP)  ## COCO-20i label PNGs + lists: make data-coco DATA_ROOT=coco [WORKERS=4]
	$(call need_root,coco)
	$(BIN)/sdaanet-data coco --root $(DATA_ROOT) --workers $(WORKERS) $(ARGS)

data-fss1000: $(STAMP)  ## check FSS-1000: make data-fss1000 DATA_ROOT=fewshot_data
	$(call need_root,fewshot_data)
	$(BIN)/sdaanet-data fss1000 --root $(DATA_ROOT) $(ARGS)

data-folder: $(STAMP)  ## check your own dataset: make data-folder DATA_ROOT=my_dataset
	$(call need_root,my_dataset)
	$(BIN)/sdaanet-data folder --root $(DATA_ROOT) $(ARGS)

.PHONY: cross-domain
cross-domain: $(STAMP)  ## PATNet's cross-domain test of a PASCAL checkpoint (4 datasets, then the report): make cross-domain CKPT=... DATA_ROOT=datapath
	@test -n "$(CKPT)" || { echo "error: CKPT is not set; run: make cross-domain CKPT=logs/.../checkpoints/last.ckpt DATA_ROOT=datapath" >&2; exit 2; }
	$(call need_root,datapath)
	status=0; $(BIN)/python -m sdaanet.eval -m experiment=cross_domain "ckpt_path='$(CKPT)'" "paths.data_dir='$(DATA_ROOT)'" "hydra.sweep.dir='$(SWEEP_DIR)'" $(ARGS) || status=$$?; \
	  test ! -d "$(SWEEP_DIR)" || $(BIN)/sdaanet-report "$(SWEEP_DIR)"; exit $$status

.PHONY: data-msrc real-photos
MSRC ?= $(or $(SDAANET_MSRC),../shared/data/msrc-v2)
RP_FOLDS ?= 0 1 2

data-msrc: $(STAMP)  ## check MSRC-v2 (real photos): make data-msrc MSRC=path/to/msrc-v2
	$(BIN)/sdaanet-data msrc --root $(MSRC) $(ARGS)

real-photos: $(STAMP)  ## the real-photo evidence of docs/real-photos.md, resumable: make real-photos MSRC=... RP_FOLDS="0 1"
	@test -f $(MSRC)/classes.tsv || { echo "error: no MSRC-v2 tree at $(MSRC); run: make real-photos MSRC=path/to/msrc-v2 (docs/data.md, MSRC-v2)" >&2; exit 2; }
	for f in $(RP_FOLDS); do \
	  SDAANET_MSRC=$(MSRC) $(BIN)/sdaanet-table IV recipe=msrc_lite0 --dir docs/real-photos/table4 --folds $$f $(ARGS) || exit $$?; \
	  test -f docs/real-photos/references-fold$$f.json || SDAANET_MSRC=$(MSRC) $(BIN)/python -m sdaanet.references recipe=msrc_lite0 data.fold=$$f --out docs/real-photos/references-fold$$f.json || exit $$?; \
	done
	$(BIN)/python scripts/real_photos_table.py

clean:  ## remove caches and logs (keeps .venv and data/)
	rm -rf .pytest_cache .ruff_cache logs outputs multirun
