# Everything a fresh machine needs: `make demo` and `make test` create .venv and install herder.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/herder up -c examples/demo/herder.toml

test: $(STAMP)
	$(PY) -m pytest -q

docs: $(STAMP)
	$(PY) -m herder.config.docs > docs/config.md
	$(PY) -m herder.core.docs > docs/states.md

clean:
	rm -rf $(VENV) .pytest_cache
