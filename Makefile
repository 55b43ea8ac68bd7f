# Tapedeck: `make run` starts the whole stack with demo data; `make test` runs every test.
# Both do all of their own set-up from nothing: a virtual environment with the locked Python
# packages, the generated contract code, the npm packages and the web build.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# Python 3.12: NautilusTrader 1.231 is built for 3.12 and up, and the lock is for 3.12 only.
# Found on PATH as python3.12 unless given (make PYTHON=/path/to/python3.12).
PYTHON ?= $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null)
ifneq ($(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; print(sys.version_info[:2] == (3, 12))' 2>/dev/null)),True)
$(error Python 3.12 is needed and $(or $(PYTHON),python3.12) is not it: install Python 3.12 (apt-get install python3.12 python3.12-venv, pyenv install 3.12, or uv python install 3.12) so that python3.12 is on PATH, or run make PYTHON=/path/to/python3.12)
endif
UV_VERSION := 0.13.9
VENV := .venv
BOOT := .bootstrap
UV := $(BOOT)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: run test setup setup-python setup-web lint test-python test-web clean

run: setup
	$(VENV)/bin/tapedeck --demo

test: setup lint test-web test-python

setup: setup-python setup-web

$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

setup-python: $(UV)
	$(UV) sync --frozen --all-packages --python $(PYTHON) --quiet
	bash scripts/codegen-python.sh

setup-web: setup-python
	cd gateway/web && npm ci --no-audit --no-fund --loglevel=error
	$(VENV)/bin/buf generate
	cd gateway/web && npm run --silent build

lint:
	$(VENV)/bin/buf lint
	bash scripts/buf-breaking.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd gateway/web && npx --no-install tsc --noEmit
	cd gateway/web && npx --no-install prettier --check --config .prettierrc \
		src vite.config.ts index.html ../../tests/e2e ../../bench/web

test-web:
	cd gateway/web && npm test --silent

test-python:
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(BOOT) gateway/web/node_modules gateway/web/dist gateway/web/src/gen services/common/src/tapedeck
