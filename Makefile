# Each target sets itself up on a fresh machine: a virtualenv in $(VENV) with the project installed
# (editable) with the extras that target needs. An install is remembered by a stamp file in the
# virtualenv, one per set of extras, newer than pyproject.toml: nothing is reinstalled until
# pyproject.toml changes (or the virtualenv is deleted).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: setup lint test demo lab screenshots serve stop status bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# $(VENV)/.installed-EXTRAS: `pip install -e ".[EXTRAS]"` succeeded after pyproject.toml last changed
# (EXTRAS: test, localpod, "localpod,lab", bench, or core for the client library alone)
$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".$(if $(filter core,$*),,[$*])"
	touch $@

## make setup: the virtualenv with everything the tests need (localpod, JupyterLab, the linters)
setup: $(VENV)/.installed-test

## make lint: ruff's lint and format check, and mypy over lib/ (settings in pyproject.toml); all three
## run and report, and lint fails if any of them found something
LINTERS := "$(VENV)/bin/ruff check ." "$(VENV)/bin/ruff format --check ." "$(VENV)/bin/mypy"
lint: $(VENV)/.installed-test
	@status=0; for check in $(LINTERS); do echo "$$check"; $$check || status=1; done; exit $$status

## make test: lint, then the whole test suite, notebooks included (the command CI runs), in
## $(TEST_WORKERS) pytest-xdist processes, one test file per process at a time (a file's stack and
## JupyterLab are built once); most tests wait on localpod's timers, so 4 fit on 2 cores
TEST_WORKERS ?= 4
test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## make demo: every runbook headless against localpod (started in the background, reused later)
demo: $(VENV)/.installed-localpod
	$(VENV)/bin/rpbook run -f params/local.yaml

## make lab: JupyterLab at the project root, opening on the start page (notebooks/README.md), with the
## project's own Jupyter config (jupyter/: runbooks saved without outputs, no news pop-up; ~/.jupyter unused)
LAB_ENV := JUPYTER_CONFIG_DIR=$(CURDIR)/jupyter JUPYTERLAB_SETTINGS_DIR=$(CURDIR)/.jupyter-lab/user-settings \
	JUPYTERLAB_WORKSPACES_DIR=$(CURDIR)/.jupyter-lab/workspaces
lab: $(VENV)/.installed-localpod,lab
	$(LAB_ENV) $(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root)

## make screenshots: one full-page PNG per runbook after a clean Run All Cells in Chromium, in docs/screenshots/
## (needs Debian's chromium and fonts-noto-color-emoji, as .ci/run installs them)
screenshots: $(VENV)/.installed-test
	RPBOOK_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -m browser -q -p no:cacheprovider -k runs_clean tests/browser

## make serve: this checkout's localpod in the foreground (the port recorded in .localpod/port, the
## one the runbooks use; LOCALPOD_URL overrides it); Ctrl+C stops it
serve: $(VENV)/.installed-localpod
	@$(VENV)/bin/rpbook localpod serve

# stop and status need rpbook only: any install made so far has it, so they reuse it instead of
# installing another set of extras (the first `make stop` after `make demo` ran a pip install)
ANY_INSTALL := $(firstword $(wildcard $(VENV)/.installed-*) $(VENV)/.installed-core)

## make stop: stop this checkout's localpod (the one the runbooks started in the background)
stop: $(ANY_INSTALL)
	@$(VENV)/bin/rpbook localpod stop

## make status: this checkout's localpod (pid and URL from its state lock), or "not running"
status: $(ANY_INSTALL)
	@$(VENV)/bin/rpbook localpod status

## make bench: print the benchmark figures
bench: $(VENV)/.installed-bench
	$(PY) benchmarks/localpod_overhead.py
	$(PY) benchmarks/cached_model_coldstart.py
	$(PY) benchmarks/runbook_walltime.py
	$(PY) benchmarks/embeddings_throughput.py
	$(PY) benchmarks/localpod_durability.py
	$(PY) benchmarks/loadtest_capacity.py
	$(PY) benchmarks/capacity_sim.py
	$(PY) benchmarks/worker_protocol.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache .jupyter-lab
