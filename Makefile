# Quick start:  make demo   (set up + train/evaluate/export/verify Fashion-MNIST)
#               make test   (set up + run the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEBIAN_DATA := dataset-fashion-mnist
RECIPE ?= recipes/image_classification/fashion_mnist.yaml

.PHONY: setup data demo test test-fast bench lint clean

setup: $(STAMP) data

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian data packages: installed when running as root with apt (CI, containers).
# Elsewhere, install them yourself: sudo apt-get install $(DEBIAN_DATA)
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package $(DEBIAN_DATA)"; \
		(apt-get install -y -qq $(DEBIAN_DATA) >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(DEBIAN_DATA) >/dev/null 2>&1)) || \
		echo "warning: could not install $(DEBIAN_DATA); the fashion_mnist source will try keras.datasets"; \
	else \
		echo "note: $(DEBIAN_DATA) is not installed (sudo apt-get install $(DEBIAN_DATA)); the fashion_mnist source will try keras.datasets"; \
	fi

demo: setup
	$(VENV)/bin/toolkit train $(RECIPE)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check toolkit tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
