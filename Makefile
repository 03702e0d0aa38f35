# One-command setup, demo and tests. `make demo` and `make test` create .venv on first use.
# With a ROS 2 install sourced (ROS_DISTRO set) the venv sees its rclpy, messages and numpy, and pip adds only
# what the distro lacks (requirements-on-ros.txt, numpy held at the distro's version); the PyPI ROS wheels are skipped.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_SITE := $(if $(ROS_DISTRO),--system-site-packages,)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-ros.txt requirements-on-ros.txt requirements-crosscheck.txt setup.py
	python3 -m venv $(SYSTEM_SITE) $(VENV)
ifdef ROS_DISTRO
	@echo "ROS_DISTRO=$(ROS_DISTRO): the sourced rclpy, messages and numpy; pip adds only what is missing"
	$(PY) -c "import numpy; print('numpy==' + numpy.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -r requirements-on-ros.txt
else
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -r requirements-ros.txt
endif
	$(PY) -m pip install -q --no-deps -r requirements-crosscheck.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: setup
	$(PY) training/demo.py

test: setup
	$(PY) -m pytest -q test

lint: setup
	$(VENV)/bin/ruff check qattn_ros training test benchmarks launch
	$(VENV)/bin/ruff format --check qattn_ros training test benchmarks launch

bench: setup  # CPU benchmarks; benchmarks.headline and benchmarks.udacity_pipeline run longer
	$(PY) -m benchmarks.train_throughput
	$(PY) -m benchmarks.data_throughput
	$(PY) -m benchmarks.eval_throughput
	$(PY) -m benchmarks.node_latency

clean:
	rm -rf $(VENV) data_out runs
