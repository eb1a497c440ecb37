# Two commands on a fresh machine; each sets itself up.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test serve bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY)
	$(PY) -m pip install --quiet -e ".[test]"

## make test: the whole test suite (the command CI runs)
test: setup
	$(PY) -m pytest

## make serve: localpod in the foreground on 127.0.0.1:8765
serve: setup
	$(VENV)/bin/localpod serve

## make bench: print the benchmark figures
bench: setup
	$(PY) benchmarks/localpod_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
