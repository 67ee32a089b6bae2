# csim — see README.md. Every target creates the virtualenv first when it is missing.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= $(shell $(BIN)/python -c "import torch; print('paper' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
SEEDS ?= 42
TABLE ?=
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
	else $(BIN)/python scripts/fetch_data.py --out data; fi

test: install data
	$(BIN)/python -m pytest tests

smoke: install data
	$(BIN)/csim train +exp=simcse_unsup scale=smoke

clean:
	rm -rf outputs cache
