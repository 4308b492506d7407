# Quick start:  make demo   (set up + train/evaluate/export/verify Fashion-MNIST)
#               make test   (set up + run the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEBIAN_DATA := dataset-fashion-mnist sword-text-web sword-text-sparv espeak-ng pocketsphinx-testdata fortunes
RECIPE ?= recipes/image_classification/fashion_mnist.yaml

.PHONY: setup data demo test test-fast docs bench lint clean

setup: $(STAMP) data

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@# Offline nuclei data from the stardist wheel (PyPI); the recipe also fetches it on first use.
	-$(VENV)/bin/toolkit data fetch nuclei
	@# Offline MovieLens-100k from the recbole wheel (PyPI), never committed; also fetched on first use.
	-$(VENV)/bin/toolkit data fetch movielens
	@# Real recorded speech (Asterisk PBX prompts, 5 languages): Debian packages fetched with apt-get download and
	@# unpacked into the data cache without root; also fetched on first use.
	-$(VENV)/bin/toolkit data fetch asterisk
	touch $(STAMP)

# Debian data packages: installed when running as root with apt (CI, containers).
# Elsewhere, install them yourself: sudo apt-get install $(DEBIAN_DATA)
#   dataset-fashion-mnist: image classification / fashion scenes
#   sword-text-web sword-text-sparv: the English-Spanish Bible (translation)
#   espeak-ng: synthetic speech (speech recognition); pocketsphinx-testdata: real speech test clips
#   fortunes: text classification (BSD fortune cookies by category)
data:
	@missing=""; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	[ -f /usr/share/sword/mods.d/engWEB2015eb.conf ] || missing="$$missing sword-text-web"; \
	[ -f /usr/share/sword/mods.d/spaRV1909eb.conf ] || missing="$$missing sword-text-sparv"; \
	[ -x /usr/bin/espeak-ng ] || missing="$$missing espeak-ng"; \
	[ -f /usr/share/pocketsphinx/test/data/librivox/transcription ] || missing="$$missing pocketsphinx-testdata"; \
	[ -f /usr/share/games/fortunes/computers ] || missing="$$missing fortunes"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages$$missing"; \
		(apt-get install -y -qq $$missing >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1)) || \
		echo "warning: could not install$$missing; recipes that need them will say so"; \
	else \
		echo "note: not installed:$$missing (sudo apt-get install$$missing); recipes that need them will say so"; \
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
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

test-fast: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

docs: setup
	$(PY) docs/generate.py

bench: setup
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1)); } || echo "note: wrk not installed (apt-get install wrk); the serve load test uses the Python client"
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check toolkit tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
