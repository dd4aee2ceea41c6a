# Two commands for a fresh clone: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export AGNO_TELEMETRY := false
export PYTHONDONTWRITEBYTECODE :=

.PHONY: demo test test-unit bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench,embeddings,scale]"
	@# Prefect imports ~2x faster from compiled bytecode; these machines set PYTHONDONTWRITEBYTECODE.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/adaptive-router demo $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q -m "not slow"

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .adaptive-router .pytest_cache

.PHONY: serve stop

# A local Prefect server and worker running every scheduled flow of prefect.yaml; UI on 127.0.0.1:4200.
serve: $(STAMP)
	$(BIN)/adaptive-router up $(ARGS)

stop:
	$(BIN)/adaptive-router stop
