# Developer entry points for the onramp retry tool (GNU make).
# With DATABASE_URL unset everything runs on the embedded PostgreSQL under instance/
# (see app/embedded_db.py); that server is a daemon shared by `make run`, `make test` and the
# CLI, and keeps running until `make db-stop`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `$(or ...)` so that an empty PORT in the environment still means 8000.
PORT := $(or $(PORT),8000)
PYTEST_ARGS ?=
PSQL_ARGS ?=
BENCH_ARGS ?=
# Stamp files keyed on the requirements files: an install reruns whenever they change, and a
# failed pip install leaves no stamp, so the next make retries it. `venv` is the runtime set;
# `venv-dev` adds the test and lint tools of requirements-dev.txt.
VENV_STAMP := $(VENV)/.requirements.stamp
DEV_STAMP := $(VENV)/.requirements-dev.stamp

.PHONY: venv venv-dev run test test-fast lint format db-start db-stop db-status psql clean bench

venv: $(VENV_STAMP)

venv-dev: $(DEV_STAMP)

$(VENV_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(DEV_STAMP): $(VENV_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

# Start the embedded server first (when it is the one in use) so that a broken database
# fails here with its log tail instead of deep inside a migration traceback.
# gunicorn's workers, threads, timeout and logging are in gunicorn.conf.py.
# The web server and one job worker run together under app/run_all.py: Ctrl-C stops both
# gracefully (twice: at once), and if either exits the other is stopped and make fails.
run: venv
	@if [ -z "$$DATABASE_URL" ]; then $(BIN)/python -m app.embedded_db start; fi
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/python -m app.run_all \
		"web=$(BIN)/gunicorn -c gunicorn.conf.py -b 127.0.0.1:$(PORT) wsgi:app" \
		"worker=$(BIN)/flask --app wsgi worker"

# `python -m pytest` (not bin/pytest) puts the repo root on sys.path so `import app` works.
# `test` is the whole suite (what CI runs); `test-fast` leaves out the tests marked `slow`
# (the rehearsal, process kills, restarts, fuzzing: see setup.cfg) for quick feedback.
test: venv-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The same check CI runs before the tests (settings in pyproject.toml).
lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rewrite the tree in the house format and apply the safe lint fixes.
format: venv-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

db-start: venv
	$(BIN)/python -m app.embedded_db start

db-stop: venv
	$(BIN)/python -m app.embedded_db stop

# Exits 3 when the server is not running (pg_ctl's convention).
db-status: venv
	$(BIN)/python -m app.embedded_db status

# The wheel's psql against DATABASE_URL if set, else the embedded onramp database.
psql: venv
	$(BIN)/python -m app.embedded_db psql $(PSQL_ARGS)

# Benchmark of the retry endpoint (not part of `make test`): generates the `onramp_bench` database
# on DATABASE_URL's server (or the embedded one) if needed, then measures; see devtools/bench/README.md.
bench: venv
	$(BIN)/python devtools/bench/run.py $(BENCH_ARGS)

# Stop the embedded server before deleting the venv: its binaries live there, and a running
# postgres loads libraries (e.g. plpgsql) lazily from that directory. instance/ is kept.
clean:
	-if [ -x $(BIN)/python ]; then $(BIN)/python -m app.embedded_db stop; fi
	rm -rf $(VENV)
