# Two commands on a fresh machine with Python 3.11: `make demo` (the main job) and `make test`.
# torch is pinned in the same pip command as everything else: a looser pin pulls a multi-GB CUDA build.
# A GPU user installs their own torch into the venv first and then runs `make demo TORCH=`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_output
DEMO_N ?= 2000

.PHONY: install demo test lint check-env browser-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH) -e ".[all,test]"
	touch $@

install: $(VENV)/.installed

check-env: install
	$(PY) scripts/check_env.py $(if $(TORCH),,--user-torch)

demo: check-env
	$(VENV)/bin/astroembed demo --out $(DEMO_OUT) --n $(DEMO_N)

# chromium for the browser tests (tests/app/test_browser.py), apt-installed only when missing
browser-deps:
	bash scripts/install_chromium.sh

# ruff (its agreed rule subset is in pyproject.toml) lints the tree before the tests run
lint: install
	$(VENV)/bin/ruff check src tests bench experiments scripts

test: check-env lint browser-deps
	$(PY) -m pytest -q -p no:cacheprovider

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet $(TORCH) -e ".[all,test,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	$(PY) bench/run_all.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
