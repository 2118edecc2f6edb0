# The two commands a new user needs are `make demo` and `make test`; each sets up first.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= skcorr-output

.PHONY: setup demo test lint bench docs clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/skcorr demo --output $(OUT) --overwrite

test: setup
	$(PY) -m pytest -q -ra

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/codespell

bench: setup
	$(PY) bench/features.py

docs: setup
	$(VENV)/bin/sphinx-build -b html docs docs/_build/html

clean:
	rm -rf docs/_build docs/auto_examples docs/generated $(OUT)
