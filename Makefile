# Flotilla: `make demo` runs the product on a local cluster; `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell for p in python3.13 python3.12 $(HOME)/.pyenv/versions/3.13*/bin/python3.13 $(HOME)/.pyenv/versions/3.12*/bin/python3.12; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := openssh-server chromium haproxy libcap2-bin wrk
TEST_ENV := DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flotilla} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15} \
	FLOTILLA_VAR_DIR=$(CURDIR)/var/test DJANGO_ALLOW_ASYNC_UNSAFE=true FLOTILLA_TEST_FAST_PASSWORD_HASH=true

.PHONY: help demo demo-bare test test-fast bench lint deps services venv axe

help:
	@echo "make demo   - run Flotilla on a local 4-node cluster (embedded SQLite + file broker)"
	@echo "make test   - run the whole test suite (PostgreSQL, Redis, sshd nodes, Chromium)"
	@echo "make test-fast - the tests that start no real nodes (-m \"not nodes\")"
	@echo "make bench  - run the benchmarks; results in bench/results/*.json"

# The project itself goes in editable (the checkout stays what runs), which puts the `flotilla`
# command-line client in $(VENV)/bin.
$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python 3.12 or newer found (Django 6.1 needs it). Install python3.12+ or set PYTHON=/path/to/python3.12"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(VENV)/.installed

deps:
	@missing=""; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	test -x /usr/sbin/haproxy || missing="$$missing haproxy"; \
	test -x /usr/sbin/setcap || missing="$$missing libcap2-bin"; \
	test -x /usr/bin/wrk || missing="$$missing wrk"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/python3 || missing="$$missing python3"; \
	if [ -n "$$missing" ]; then \
		echo "Installing system packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

services:
	@bash tests/services.sh

# axe-core checks every page's accessibility in the browser tests (tests/foundation/test_accessibility.py).
AXE := var/npm/node_modules/axe-core/axe.min.js
$(AXE):
	@command -v npm >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm; }
	npm install --prefix var/npm --no-audit --no-fund --silent axe-core@4.14.1

axe: $(AXE)

# The demo serves its static files as production does: collected, compressed, named by content.
DEMO_ENV := FLOTILLA_VAR_DIR=$(CURDIR)/var/demo STATIC_ROOT=$(CURDIR)/var/demo/static STATIC_COLLECTED=true

demo: deps venv
	rm -rf var/demo
	$(DEMO_ENV) $(PY) manage.py migrate --noinput -v0
	$(DEMO_ENV) $(PY) manage.py collectstatic --noinput -v0
	$(DEMO_ENV) $(PY) manage.py demo $(if $(filter bare,$(DEMO)),--bare,)

# Two lanes at once (tests/lanes.sh says how they are split and kept apart).
test: deps venv services axe
	$(PY) -m ruff check .
	bash tests/lanes.sh $(PY)

# The tests that start no real nodes (the `nodes` marker is set by tests/conftest.py): a quick loop.
test-fast: deps venv services axe
	$(PY) -m ruff check .
	$(TEST_ENV) $(PY) -m pytest -m "not nodes"

bench: deps venv services
	@for b in bench/*.py; do echo "== $$b"; $(TEST_ENV) $(PY) $$b || exit 1; done

lint: venv
	$(PY) -m ruff format --check . && $(PY) -m ruff check .
