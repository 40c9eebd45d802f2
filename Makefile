# Two commands do everything on a fresh machine:
#   make train   set up .venv and run the main job (python scripts/train_ppo.py --syre)
#   make test    set up .venv and run the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test lint bench

install: $(STAMP)

# torch first, pinned to the CPU build this machine keeps on disk; the project's range then installs nothing more.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,ray]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train_ppo.py --syre $(ARGS)

test: $(STAMP)
	$(PY) -m pytest tests $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check syre_rl scripts tests

bench: $(STAMP)
	$(PY) scripts/bench_core.py
