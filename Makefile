# The two commands a fresh machine needs (see README):
#   make demo   installs the lab, fetches the sample clips (offline: warns, goes on with the bundled clip)
#               and runs the main job on the embedded default
#   make test   installs the lab with its test tools, lints (ruff), builds the API reference (mkdocs --strict:
#               a warning fails) and runs the whole test suite
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q

.PHONY: install install-test demo test

install:
	$(PIP) -e .

install-test:
	$(PIP) -e ".[all]"

demo: install
	$(PYTHON) -m lab demo --fetch

test: install-test
	$(PYTHON) -m ruff check lab apps scripts tests notebooks
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --quiet
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -ra --durations=15
