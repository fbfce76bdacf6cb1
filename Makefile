# Two commands on a fresh machine: `make run` and `make test`. Both are idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck migrations-check pytest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Web on http://127.0.0.1:8000, a Celery worker, beat and the local Twilio-compatible server; Ctrl-C stops all.
run: $(STAMP)
	DEBUG=1 $(PY) manage.py init_env
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_admin
	$(BIN)/honcho -f Procfile start

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	SMSAPP_IGNORE_DOTENV=1 $(BIN)/mypy

migrations-check: $(STAMP)
	SMSAPP_IGNORE_DOTENV=1 DEBUG=1 DATABASE_URL=sqlite:///:memory: $(PY) manage.py makemigrations --check --dry-run

# The suite twice: on throwaway PostgreSQL + Redis (where their binaries exist), then the embedded defaults
# (SQLite, filesystem broker) that `make run` uses.
# In PYTEST_WORKERS processes (pytest-xdist; 0 runs in this one): most integration tests wait on real workers and
# a 1 message/s sender, so two processes on two cores take half the time. Each has its own test database, Redis
# database and broker folders (smsapp/testing/xdist.py).
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	SMSAPP_IGNORE_DOTENV=1 $(PY) -m smsapp.testing.services -- $(BIN)/pytest -m "not embedded" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	env -u DATABASE_URL -u REDIS_URL SMSAPP_IGNORE_DOTENV=1 $(BIN)/pytest -m embedded -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck migrations-check pytest

bench: $(STAMP)
	SMSAPP_IGNORE_DOTENV=1 $(PY) -m smsapp.testing.services -- $(PY) bench/run_all.py

clean:
	rm -rf var staticfiles
