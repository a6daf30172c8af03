# The two Quickstart commands. Each sets up its own virtual environment (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# The offline 2D detector (structpose.detect): mediapipe 0.10.21 needs numpy<2 and protobuf<5, so it gets a venv
# of its own, run as a subprocess. DETECT_PYTHON: a Python that mediapipe 0.10.21 has wheels for (3.9-3.12).
DETECT_VENV ?= .venv-detect
DETECT_PYTHON ?= python3

$(DETECT_VENV)/.installed:
	$(DETECT_PYTHON) -m venv $(DETECT_VENV)
	$(DETECT_VENV)/bin/pip install -q --upgrade pip
	$(DETECT_VENV)/bin/pip install -q mediapipe==0.10.21 scikit-image==0.26.0
	touch $@

.PHONY: setup test test-portability reproduce lint detector
setup: $(VENV)/.installed

detector: $(DETECT_VENV)/.installed

test: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benches
	$(PY) -m pytest

# The suite (pytest only) three more times, so that other kernels and their other last bits show on one
# machine: (a) ATen's generic kernels, oneDNN's and MKL's AVX2 ones instead of this CPU's best; (b) one
# OpenMP/MKL thread; (c) python -O, so that no check in src/ rests on an assert. Each pass is the whole
# suite (~75 s on the 2 CI cores, (a) somewhat more): no need for the -m "not slow" subset yet.
test-portability: $(VENV)/.installed
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 $(PY) -m pytest
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest
	$(PY) -O -m pytest

reproduce: $(VENV)/.installed
	$(VENV)/bin/structpose reproduce

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benches
	$(VENV)/bin/ruff format --check src tests benches
