# The two commands: `make demo` (set up the embedded stack and run the main job) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BOOTSTRAP := .mlops/bootstrap
UV_VERSION := 0.13.9
# Use uv from PATH when there is one; otherwise bootstrap a pinned uv with pip.
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
UV := $(if $(UV_ON_PATH),$(UV_ON_PATH),$(BOOTSTRAP)/bin/uv)
STACK := $(VENV)/bin/python -m mlops_demo.stack

export UV_PYTHON_DOWNLOADS := never
export WHYLOGS_NO_ANALYTICS := True
export BENTOML_DO_NOT_TRACK := True

.PHONY: help venv browser test lint up down status demo clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BOOTSTRAP)/bin/uv:
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet "uv==$(UV_VERSION)"

venv: $(if $(UV_ON_PATH),,$(BOOTSTRAP)/bin/uv)  ## create or update .venv from uv.lock (exactly)
	$(UV) sync --frozen --python $(PYTHON)

test: venv browser  ## run the whole test suite
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Debian's chromium, which tests/e2e drives headless; Playwright's browser download is never used.
browser:  ## install Debian's chromium (for tests/e2e) when it is missing
	@command -v chromium >/dev/null || { \
		sudo=$$( [ "$$(id -u)" -eq 0 ] || command -v sudo || true ); \
		$$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends chromium; \
	}

lint: venv  ## ruff and mypy on the package
	$(VENV)/bin/ruff check airflow_mlops_provider mlops_demo dags tests benchmarks
	$(VENV)/bin/ruff format --check airflow_mlops_provider mlops_demo dags tests benchmarks
	$(VENV)/bin/mypy

up: venv  ## start Airflow standalone (:8080) and the MLflow server (:5000) on loopback
	$(STACK) up

down:  ## stop exactly what `make up` started
	@if [ -x $(VENV)/bin/python ]; then $(STACK) down; else echo "nothing to stop (no venv)"; fi

status:  ## say what runs where
	@$(STACK) status || true

demo: up  ## set up the embedded stack and run the main job
	$(VENV)/bin/python -m mlops_demo.churn_story

clean: down  ## remove all local state (.mlops/) but keep the venv
	rm -rf .mlops
