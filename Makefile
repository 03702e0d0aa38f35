# One-command setup, demo and tests. `make demo` and `make test` create .venv on first use.
# With a ROS 2 install sourced (ROS_DISTRO set) the venv sees its rclpy, messages and numpy, and pip adds only
# what the distro lacks (requirements-on-ros.txt + requirements-test.txt), holding the distro's numpy and
# setuptools < 80 (constraints-$(ROS_DISTRO).txt where there is one); the PyPI ROS wheels are skipped.
VENV ?= .venv
# the interpreter the venv is made from: 3.10 (Humble), 3.11 or 3.12 (Jazzy), e.g. make PYTHON=python3.12 setup
PYTHON ?= python3
PY := $(VENV)/bin/python
# Where torch comes from: PyTorch's CPU wheel index on a machine without an NVIDIA driver (PyPI's torch for Linux is
# the CUDA build, several GB), pip's own indexes where there is one. TORCH_INDEX=<url> for another (a CUDA index),
# TORCH_INDEX= for pip's own. An index that does not answer is said and skipped: pip's indexes decide then.
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)
TORCH_PIN := $(shell grep -m1 '^torch==' requirements.txt)
SYSTEM_SITE := $(if $(ROS_DISTRO),--system-site-packages,)
DISTRO_CONSTRAINTS := $(wildcard constraints-$(ROS_DISTRO).txt)

# $(call install_torch,python): the pinned torch from TORCH_INDEX when it answers; the line says which
define install_torch
	@if [ -n "$(TORCH_INDEX)" ] && $(1) -c "import urllib.request; urllib.request.urlopen('$(TORCH_INDEX)/', timeout=10)" \
		2>/dev/null; then echo "torch: $(TORCH_PIN) from $(TORCH_INDEX)"; \
		$(1) -m pip install -q --index-url $(TORCH_INDEX) "$(TORCH_PIN)"; \
	else echo "torch: $(if $(TORCH_INDEX),$(TORCH_INDEX) does not answer; ,)$(TORCH_PIN) from pip's own indexes"; fi
endef

.PHONY: setup editable demo test test-distro-pythons lint bench docs models clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-ros.txt requirements-on-ros.txt requirements-test.txt \
		requirements-crosscheck.txt constraints-humble.txt constraints-jazzy.txt setup.py setup.cfg
	@$(PYTHON) -c "import sys; ok = (3, 10) <= sys.version_info[:2] <= (3, 12); ok or print(f'make setup: \
	{sys.executable} is Python {sys.version.split()[0]}; qattn_ros needs 3.10, 3.11 or 3.12: make PYTHON=python3.11 setup'); \
	sys.exit(not ok)"
	$(PYTHON) -m venv $(SYSTEM_SITE) $(VENV)
ifdef ROS_DISTRO
	touch $(VENV)/COLCON_IGNORE  # the venv sits in the workspace's src/: colcon must not crawl it
	@echo "ROS_DISTRO=$(ROS_DISTRO): the sourced rclpy, messages and numpy; pip adds only what is missing"
	$(PY) -c "import numpy; print('numpy==' + numpy.__version__); print('setuptools<80')" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt $(addprefix -c ,$(DISTRO_CONSTRAINTS)) \
		-r requirements-on-ros.txt -r requirements-test.txt
else
	$(call install_torch,$(PY))
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -r requirements-ros.txt
endif
	$(PY) -m pip install -q --no-deps -r requirements-crosscheck.txt
	$(MAKE) --no-print-directory editable VENV=$(VENV)
	touch $@

# The package itself, editable, into $(VENV). --use-pep517: without a pyproject.toml, pip (22.0 as on Jammy; 24 when
# `wheel` is importable, as on Noble) would run the legacy `setup.py develop`, which setuptools >= 80 refuses over
# setup.cfg's [develop] script_dir (the ROS layout: executables in lib/qattn_ros).
editable:
	$(PY) -m pip install -q --no-deps --use-pep517 -e .

demo: setup
	$(PY) training/demo.py

test: setup
	$(PY) -m pytest -q test

# Humble's and Jazzy's Pythons: the tests that need no rclpy, on pyenv's 3.10 with Humble's numpy, opencv and
# matplotlib, and on 3.12 with Jazzy's numpy (constraints-<distro>.txt; requirements-apt.txt stands in for apt).
# The CPU torch wheel on this machine's disk is for 3.11 only: where TORCH_INDEX does not answer, these venvs take
# PyPI's torch (CUDA libraries, ~2.6 GB; run on the CPU). Test files that import rclpy, the messages or the nodes
# are not run here, and the run says which.
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHON_humble ?= $(PYENV_ROOT)/versions/3.10.13/bin/python3
PYTHON_jazzy ?= $(PYENV_ROOT)/versions/3.12.1/bin/python3
ROS_TESTS := $(shell grep -l -E '^(import|from) (rclpy|ros_harness|qattn_ros\.ros|[a-z0-9_]+_(msgs|srvs))\b' test/test_*.py)

test-distro-pythons: test-humble test-jazzy

.venv-%/.installed: requirements-apt.txt requirements-on-ros.txt requirements-test.txt requirements-crosscheck.txt \
		constraints-%.txt setup.py setup.cfg
	@test -x "$(PYTHON_$*)" || { echo "$*: no interpreter at $(PYTHON_$*) (set PYTHON_$*=...)"; exit 1; }
	rm -rf .venv-$*
	$(PYTHON_$*) -m venv .venv-$*
	$(call install_torch,.venv-$*/bin/python)
	.venv-$*/bin/python -m pip install -q -c constraints-$*.txt \
		-r requirements-apt.txt -r requirements-on-ros.txt -r requirements-test.txt
	.venv-$*/bin/python -m pip install -q --no-deps -r requirements-crosscheck.txt
	$(MAKE) --no-print-directory editable VENV=.venv-$*
	touch $@

test-humble test-jazzy: test-%: .venv-%/.installed
	@.venv-$*/bin/python -c "import sys, numpy, cv2, torch; print('$*: Python', sys.version.split()[0], \
		'numpy', numpy.__version__, 'opencv', cv2.__version__, 'torch', torch.__version__)"
	@echo "$*: not run here (they need rclpy): $(ROS_TESTS)"
	@echo "$*: the tests marked slow run once, in make test"
	.venv-$*/bin/python -m pytest -q -m "not slow" $(addprefix --ignore=,$(ROS_TESTS)) test

lint: setup
	$(VENV)/bin/ruff check qattn_ros tools training evaluation test benchmarks launch
	$(VENV)/bin/ruff format --check qattn_ros tools training evaluation test benchmarks launch

# Retrain the shipped models (models/manifest.json) with their recorded recipes and seeds, and say how far the
# retrained ones are from the shipped ones; --install would replace them (training/ship_models.py).
models: setup
	$(PY) -m training.ship_models

bench: setup  # CPU benchmarks; benchmarks.headline and benchmarks.udacity_pipeline run longer
	$(PY) -m benchmarks.train_throughput
	$(PY) -m benchmarks.data_throughput
	$(PY) -m benchmarks.eval_throughput
	$(PY) -m benchmarks.node_latency

docs: setup  # README.md's and docs/'s generated tables (from the code and benchmarks/results), and docs/figures.py's pictures
	$(PY) -m tools.doc_tables
	$(PY) docs/figures.py

clean:
	rm -rf $(VENV) .venv-humble .venv-jazzy data_out runs
