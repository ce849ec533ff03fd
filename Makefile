# Two commands on a fresh Debian 12 (as root, or with sudo):  make demo   |   make test
# Both are idempotent: installed pieces are detected and skipped.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-matplotlib xvfb
RUFF_VERSION := 0.17.6
RUFF := ruff==$(RUFF_VERSION)
PIP_PACKAGES := torch==2.13.0 pytest pytest-qgis scikit-image "dask[distributed]" "numpy<2" $(RUFF)
OUT ?= demo_output

.PHONY: setup system venv demo lint test plugin clean

setup: system venv

system:
	@if ! command -v qgis_process.bin >/dev/null || ! /usr/bin/python3 -c "import qgis.core, osgeo.gdal_array" 2>/dev/null; then \
	  echo "== installing QGIS and GDAL (apt)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed:
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q $(PIP_PACKAGES)
	$(PY) -c "import torch, osgeo.gdal_array, qgis.core; print('torch', torch.__version__)"
	touch $@

plugin: setup
	@tools/install_plugin.sh

demo: setup
	@tools/demo.sh $(OUT)

# Style and static checks (config: pyproject.toml [tool.ruff]). A venv made before ruff joined
# PIP_PACKAGES, or holding another ruff version, gets the pinned one here.
lint: venv
	@[ "$$($(PY) -m ruff --version 2>/dev/null)" = "ruff $(RUFF_VERSION)" ] || $(PY) -m pip install -q $(RUFF)
	$(PY) -m ruff check .

test: setup lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(OUT) .pytest_cache
