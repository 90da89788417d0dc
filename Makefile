# ssg_eval: every target creates/uses its own .venv. `make help` lists targets.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXP ?= smoke
EXPS ?= table1
SUITE ?= table1
SMOKE ?= smoke
MODEL ?=
GUIDANCE ?=
CELL = experiment=$(EXP) $(if $(MODEL),model=$(MODEL)) $(if $(GUIDANCE),guidance=$(GUIDANCE))
NPROC ?= 1
NNODES ?= 1
RDZV ?=
ARGS ?=
TUNE ?= $(if $(filter tiny%,$(MODEL)),tiny,default)
export OMP_NUM_THREADS ?= 2

.PHONY: help install browser lint format test test-all test-gpu smoke table1 tune sample features metrics report sweep bench device-check clean lint-samples conformance

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install ssg_eval (editable, dev extras)

lint: $(STAMP) ## ruff check + format check + the layer contract (import-linter, pyproject.toml)
	$(VENV)/bin/ruff check ssg_eval tests benchmarks
	$(VENV)/bin/ruff format --check ssg_eval tests benchmarks
	$(VENV)/bin/lint-imports

format: $(STAMP) ## ruff format + autofix
	$(VENV)/bin/ruff format ssg_eval tests benchmarks
	$(VENV)/bin/ruff check --fix ssg_eval tests benchmarks

browser: ## Debian's chromium for the report-page browser tests (installed when absent and root)
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "make browser: chromium could not be installed; the browser tests will skip" >&2; fi

test: $(STAMP) browser ## fast suite (no slow, no gpu markers)
	$(PY) -m pytest -q -m "not slow and not gpu and not adm_parity" $(ARGS)

test-all: $(STAMP) browser ## every CPU test, slow included
	$(PY) -m pytest -q -m "not gpu" $(ARGS)

test-gpu: $(STAMP) ## tests that need CUDA (and the real checkpoints/fixtures where marked)
	$(PY) -m pytest -q -m "gpu or adm_parity" $(ARGS)

smoke: $(STAMP) ## tiny offline pipeline (SMOKE=smoke|smoke_512|smoke_guidance|smoke_tuned [GUIDANCE=tuned]): tiny assets -> sample -> features -> metrics -> table
	$(PY) -m ssg_eval.smoke --suite $(SMOKE) $(if $(filter tuned,$(GUIDANCE)),--guidance tuned) $(ARGS)

table1: $(STAMP) ## a suite (SUITE=table1|guidance|finetuned|table512); skips finished stages; GUIDANCE=tuned: make tune's SSG
	$(PY) -m ssg_eval.stages.suite $(SUITE) $(if $(filter tuned,$(GUIDANCE)),--guidance tuned) launch.nproc_per_node=$(NPROC) launch.nnodes=$(NNODES) $(if $(RDZV),launch.rdzv_endpoint=$(RDZV)) $(ARGS)

tune: $(STAMP) ## find beta by paired successive halving: make tune MODEL=var_d16 [TUNE=readings] -> results/tune/<model>
	$(PY) -m ssg_eval.tune target=$(MODEL) tune=$(TUNE) $(if $(filter-out 1,$(NPROC)),"overrides=['launch.nproc_per_node=$(NPROC)']") $(ARGS)

sample: $(STAMP) ## sample one cell: make sample EXP=table1 MODEL=var_d16 GUIDANCE=cfg_ssg NPROC=8 [NNODES=2 RDZV=host:port, on every node]
	if [ "$(NNODES)" != "1" ]; then \
	  test -n "$(RDZV)" || { echo "make sample: NNODES=$(NNODES) needs RDZV=HOST:PORT (the first node), the same command on every node" >&2; exit 2; }; \
	  $(VENV)/bin/torchrun --nnodes=$(NNODES) --nproc_per_node=$(NPROC) --rdzv_backend=c10d --rdzv_endpoint=$(RDZV) --rdzv_id=$(subst /,_,$(EXP))$(if $(MODEL),_$(MODEL))$(if $(GUIDANCE),_$(GUIDANCE)) -m ssg_eval.stages.sample $(CELL) $(ARGS); \
	elif [ "$(NPROC)" = "1" ]; then $(PY) -m ssg_eval.stages.sample $(CELL) $(ARGS); \
	else $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m ssg_eval.stages.sample $(CELL) $(ARGS); fi

features: $(STAMP) ## Inception features of one cell's samples: make features EXP=table1 MODEL=... GUIDANCE=... [NPROC=8: one share of the shards per rank]
	if [ "$(NPROC)" = "1" ]; then $(PY) -m ssg_eval.stages.features $(CELL) $(ARGS); \
	else $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m ssg_eval.stages.features $(CELL) $(ARGS); fi

metrics: $(STAMP) ## FID/sFID/IS/P/R of one cell: make metrics EXP=table1 MODEL=... GUIDANCE=...
	$(PY) -m ssg_eval.stages.metrics $(CELL) $(ARGS)

report: $(STAMP) ## collect metrics.json of all runs into results/table1.{csv,md}
	$(PY) -m ssg_eval.stages.report $(ARGS)

sweep: $(STAMP) ## one torchrun per experiment: make sweep EXPS="a b c" NPROC=8
	for e in $(EXPS); do $(MAKE) --no-print-directory sample EXP=$$e NPROC=$(NPROC) NNODES=$(NNODES) RDZV=$(RDZV) ARGS="$(ARGS)" || exit 1; done

bench: $(STAMP) ## benchmarks (quick=true for a fast pass: make bench ARGS=--quick)
	$(PY) benchmarks/run_all.py $(ARGS)

device-check: ## GPU figures in one script (CPU: make device-check ARGS="--cpu --quick")
	bash benchmarks/device_check.sh $(ARGS)

lint-samples: $(STAMP) ## judge a samples npz before scoring: make lint-samples FILE=samples.npz [REF=reference.npz] [FEATURES=features.npz]
	@test -n "$(FILE)" || { echo "make lint-samples: give FILE=path/to/samples.npz [REF=reference.npz]" >&2; exit 2; }
	$(VENV)/bin/ssg-lint $(FILE) $(if $(REF),--reference $(REF)) $(if $(FEATURES),--features $(FEATURES)) $(ARGS)

conformance: $(STAMP) ## FILE and REF through ssg_eval, torch-fidelity, torchmetrics, clean-fid: make conformance FILE=samples.npz REF=ref.npz [WEIGHTS=inception.pth]
	@test -n "$(FILE)" -a -n "$(REF)" || { echo "make conformance: give FILE=samples.npz REF=reference.npz [WEIGHTS=inception.pth]" >&2; exit 2; }
	$(PY) -c "import torchmetrics, cleanfid" 2>/dev/null || $(PY) -m pip install -q -e '.[conformance]'
	$(PY) -m ssg_eval.conformance.cli $(FILE) $(REF) $(if $(WEIGHTS),--inception-weights $(WEIGHTS)) $(ARGS)

clean: ## remove caches only (never results/runs)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
