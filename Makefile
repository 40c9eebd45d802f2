# Two commands do everything on a fresh machine:
#   make train   set up .venv and run the main job (python scripts/train_ppo.py --syre)
#   make test    set up .venv and run the test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test lint bench gpu-check gpu-data gpu-wheels

install: $(STAMP)

# torch first, pinned to the CPU build this machine keeps on disk; the project's range then installs nothing more.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,ray,zoo]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train_ppo.py --syre $(ARGS)

test: $(STAMP)
	$(PY) -m pytest tests $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check syre_rl scripts tests

bench: $(STAMP)
	$(PY) scripts/bench/bench_core.py

# The device check (scripts/bench/gpu_check.py): CUDA tests and GPU benchmarks, report in $(GPU_OUT). A GPU machine
# that receives only the repository has its own Python with torch: then python3 runs it, no .venv needed.
GPU_OUT ?= gpu-check
GPU_DATA ?= $(or $(SYRE_RL_DATA),$(HOME)/.cache/syre_rl)
GPU_PY := $(if $(wildcard $(PY)),$(PY),python3)

gpu-check:
	$(GPU_PY) scripts/bench/gpu_check.py --out $(GPU_OUT) $(ARGS)

# What such a machine lacks, into the ignored folder .gpu/: MNIST's raw files (11 MB) and the SB3 wheels for
# Python 3.12 (about 1.5 MB); pass --data-dir .gpu/data.
gpu-data:
	mkdir -p .gpu/data/MNIST/raw
	cp $(GPU_DATA)/MNIST/raw/*-ubyte* .gpu/data/MNIST/raw/

gpu-wheels:
	$(GPU_PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_17_x86_64 --platform any -d .gpu/wheels \
		stable-baselines3==2.9.2 sb3-contrib==2.9.2 gymnasium==1.4.0 farama-notifications==0.0.6
