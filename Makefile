# csim — see README.md. Every target creates the virtualenv first when it is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= $(shell $(BIN)/python -c "import torch; print('paper' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
SEEDS ?=
TABLE ?=
# cells trained side by side by `csim tables` (each with threads/JOBS torch threads): 2 on a CPU (two 1-thread runs
# did all cpu tables in 1h01m on 2 cores at 0fcbc53, one 2-thread run at a time about 1.5 h earlier), 1 on a GPU
JOBS ?= $(if $(filter cpu,$(SCALE)),2,1)
# LAUNCHER="hydra/launcher=submitit_slurm hydra.launcher.partition=gpu ...": the cells go through that Hydra launcher
# (pip install -e '.[cluster]'; README "Running on a cluster") instead of JOBS local processes
LAUNCHER ?=
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONDONTWRITEBYTECODE ?= 1

.PHONY: install data test smoke mini-encoder reproduce-tables bench clean

# torch==2.13.0 is the CPU wheel on this machine's disk (/opt/wheels); uv installs the stack in ~20 s and
# compiles bytecode at install (imports take 12 s instead of 34 s with PYTHONDONTWRITEBYTECODE=1).
$(BIN)/csim: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --find-links /opt/wheels --compile-bytecode -e '.[dev]'
	touch $(BIN)/csim

install: $(BIN)/csim

# The offline data layout: link ../shared/data when present, otherwise download the same layout from the hub.
data:
	@if [ -e data ]; then echo "data/ present"; \
	elif [ -d ../shared/data ]; then ln -s ../shared/data data && echo "linked data -> ../shared/data"; \
	else HF_HUB_OFFLINE=0 $(BIN)/python scripts/fetch_data.py --out data; fi

test: install data
	$(BIN)/python -m pytest tests

smoke: install data
	$(BIN)/csim train +exp=simcse_unsup scale=smoke

# The cpu-scale mini encoder: MLM pretraining (~45-60 min on 2 cores, once; reused from outputs/ and models/),
# then results/mini_encoder.md (pretrained vs random start, before/after a short unsup SimCSE run).
mini-encoder: install data
	$(BIN)/csim train +exp=mlm_pretrain
	$(BIN)/python scripts/mini_encoder_report.py

# The paper tables (conf/tables/*.yaml) next to the published numbers, in results/tables/$(SCALE)/ (csim/tables/).
# Finished cells are reused from their committed records (results/tables/<scale>/<table>/rows/) or run directories,
# so an interrupted run resumes with the missing cells. SEEDS defaults to the scale's table_seeds (cpu: 42,43,44,
# mean ± sd and Welch's t against each table's reference row; others: 42); TABLE=name runs one table (without
# TABLE: every spec without `by_default: false`, i.e. both papers' tables and the loss table; TABLE=successors runs
# SimCSE's successors); JOBS=n trains n cells at a time.
reproduce-tables: install data
	@if [ "$(SCALE)" = cpu ] && [ ! -d "$${CSIM_MODELS_DIR:-models}/mini-bert" ]; then $(MAKE) mini-encoder; fi
	$(BIN)/csim tables --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) --jobs $(JOBS) $(if $(TABLE),--table $(TABLE)) $(LAUNCHER)

# csim vs sentence-transformers side by side (training, encoding, matmul peak, MLM step) -> results/bench.md;
# under 15 minutes on 2 cores. Run it on a quiet machine: other processes slow both sides.
bench: install data
	$(BIN)/python scripts/bench

clean:
	rm -rf outputs cache
