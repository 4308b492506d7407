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
	@# Offline nuclei data from the stardist wheel (PyPI); the recipe also fetches it on first use.
	-$(VENV)/bin/toolkit data fetch nuclei
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

# Train/evaluate/export/verify the recipe, then predict three held-out test images
# with the exported ONNX model (ONNX Runtime only, no TensorFlow).
demo: setup
	$(VENV)/bin/toolkit train $(RECIPE)
	@run=$$(ls -td saved_models/*/ | head -1); \
	echo "\n$$ toolkit predict $${run}export/model.onnx $${run}export/samples/00[0-2].png"; \
	$(VENV)/bin/toolkit predict $${run}export/model.onnx $${run}export/samples/000.png \
		$${run}export/samples/001.png $${run}export/samples/002.png

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
