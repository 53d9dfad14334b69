# Everything a newcomer needs: `make run` serves the demo, `make test` proves it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tenantql serve

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .tenantql .pytest_cache

# Load benchmark (not part of `make test`): see bench/README.md. BENCH_SECONDS=5 shortens each run.
.PHONY: bench bench-scaling wrk

wrk:
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)

bench: $(STAMP) wrk
	$(BIN)/python -m bench.run

bench-scaling: $(STAMP) wrk
	$(BIN)/python -m bench.run --scaling
