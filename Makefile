# Two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?= -q -n 2
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install test demo lint format bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# Without a GPU take the CPU build of torch from PyTorch's CPU-only index (a plain index serves the
	# multi-GB CUDA build); where that index cannot be reached, fall back to the plain pin.
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  $(PIP) install -q --timeout 20 --retries 1 --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)" \
	  || $(PIP) install -q "torch==$(TORCH_VERSION)"; fi
	$(PIP) install -q -e ".[full,dev,bench]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(STAMP)
	bash scripts/demo.sh $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
