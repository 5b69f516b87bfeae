# Every target here is what the README and CI call: CI runs exactly what developers run.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install install-deploy-tools run loop test test-slow test-all lint format typecheck bench lock clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps record which lock file the venv was installed from, so an edited lock reinstalls.
$(VENV)/.run-installed: requirements/run.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements/run.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@scripts/git_merge_drivers.sh "$(CURDIR)/$(BIN)/dvc"  # every set-up (make run, make test)
	@touch $@

$(VENV)/.dev-installed: requirements/dev.lock $(VENV)/.run-installed
	$(BIN)/python -m pip install --quiet -r requirements/dev.lock
	@touch $@

install: $(VENV)/.run-installed  ## create .venv and install the project from its lock file

# A DVC remote type's plugin (s3, gs, azure, ssh), locked apart from run.lock and constrained by
# it: `make install-remote-s3`. .github/scripts/dvc_remote.sh runs it for the remote's URL.
$(VENV)/.remote-%-installed: requirements/remote-%.lock $(VENV)/.run-installed
	$(BIN)/python -m pip install --quiet -r $<
	@touch $@

.PRECIOUS: $(VENV)/.remote-%-installed  # a stamp, not an intermediate file to delete
install-remote-%: $(VENV)/.remote-%-installed
	@echo "DVC's $* plugin is installed"

# A compute engine (`compute=dask`), locked apart from run.lock and constrained by it.
$(VENV)/.compute-%-installed: requirements/compute-%.lock $(VENV)/.run-installed
	$(BIN)/python -m pip install --quiet -r $<
	@touch $@

.PRECIOUS: $(VENV)/.compute-%-installed
install-compute-%: $(VENV)/.compute-%-installed
	@echo "the $* compute engine is installed"

# Static checks of rendered deployments (checkov, kubernetes-validate, hadolint) in a venv of their
# own: checkov's pins conflict with dvc's. Tests that need them skip, saying so, until it exists.
TOOLS_VENV := .venv-deploy-tools
$(TOOLS_VENV)/.installed: requirements/deploy-tools.lock
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r $<
	@touch $@

install-deploy-tools: $(TOOLS_VENV)/.installed  ## checkov, kubernetes-validate, hadolint (own venv)

run: $(VENV)/.run-installed  ## compose-check, dvc repro on the default dataset, release, summary
	$(BIN)/mlops compose --check
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlops release
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro  # deploy@<target> records already_released
	$(BIN)/mlops summary

loop: $(VENV)/.run-installed  ## the whole loop in a scratch clone: serve, drift, monitor, retrain, swap
	$(BIN)/python scripts/loop.py $(LOOP_ARGS)

test: $(VENV)/.dev-installed  ## the default test suite (under 10 minutes on 2 cores)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-slow: $(VENV)/.dev-installed  ## the long tests only
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m slow

test-all: $(VENV)/.dev-installed  ## every test
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m 'slow or not slow'

lint: $(VENV)/.dev-installed  ## ruff, format check, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

bench: $(VENV)/.dev-installed  ## every benchmark in bench/ (prints figures and ratios)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

lock: $(VENV)/.dev-installed  ## re-resolve the lock files (a change re-trains: the lock is a stage dependency)
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe -o requirements/run.lock pyproject.toml
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe --extra dev -c requirements/run.lock -o requirements/dev.lock pyproject.toml
	for type in s3 gs azure ssh; do \
	  $(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe --extra $$type -c requirements/run.lock -o requirements/remote-$$type.lock pyproject.toml; \
	done
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe --extra dask -c requirements/run.lock -o requirements/compute-dask.lock pyproject.toml
	$(BIN)/pip-compile -q --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe -o requirements/deploy-tools.lock requirements/deploy-tools.in

clean-venv:
	rm -rf $(VENV) $(TOOLS_VENV)
