# Baoxue build and test entry points. Everything works on a fresh Debian 12 machine:
# `make test` installs what is missing (Debian packages, .venv) and then runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: help setup system venv lock test test-slow demo bench bench-quick clean distclean

help:
	@echo "make demo         install, then build the demo county into out/"
	@echo "make test         install, then run the tests on SQLite and a throwaway PostgreSQL"
	@echo "make test-slow    only the long end-to-end tests (also part of make test)"
	@echo "make bench        benchmarks (make bench-quick: a short run)"
	@echo "make setup        Debian packages + $(VENV) (exactly requirements.lock) only"
	@echo "make lock         regenerate requirements.lock (an upgrade: rerun everything after)"
	@echo "make clean        remove out/, .pgtest/ and caches (distclean: also $(VENV))"

setup: system venv

system:
	@deploy/setup.sh system

venv:
	@VENV=$(VENV) deploy/setup.sh venv

# Regenerate requirements.lock on purpose (an upgrade): every transitive version pinned with its
# hashes. Then run `make test`, `make demo` and the system tests before committing it (docs/operations.md).
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml deploy/lock/tools.in --extra test --extra bench \
	    --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	    --upgrade -o requirements.lock

# Tests: a PostgreSQL cluster that lives for this run only (deploy/testdb.sh), Prefect state in
# a temporary PREFECT_HOME, pytest-xdist with $(JOBS) workers. pytest's exit code is make's; exit
# 5 (no tests collected) is a failure too.
test: setup
	@export PREFECT_HOME="$$(mktemp -d)" PREFECT_SERVER_ANALYTICS_ENABLED=false; \
	trap 'rm -rf "$$PREFECT_HOME"' EXIT; \
	deploy/testdb.sh run -- $(PY) -m pytest -n $(JOBS) --durations=12 $(PYTEST_ARGS) tests/; \
	status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

# Only the long end-to-end tests (crash, outage, privacy scan …); `make test` runs them too.
test-slow: PYTEST_ARGS += -m slow
test-slow: test

demo: setup
	$(VENV)/bin/baoxue demo --out out

bench: system venv
	$(PY) -m bench.run

bench-quick: system venv
	$(PY) -m bench.run --quick

clean:
	rm -rf out .pgtest .pytest_cache .hypothesis tests/_artifacts bench/_out
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
