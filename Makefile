# Everything a newcomer needs: `make run` serves the demo, `make test` proves it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# GraphiQL's browser assets, pinned by graphiql/package-lock.json and served by the app itself.
GRAPHIQL_STAMP := graphiql/node_modules/.installed

.PHONY: install run test lint clean chromium pgbouncer

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(GRAPHIQL_STAMP): graphiql/package.json graphiql/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js and npm for GraphiQL's assets" >&2; exit 1; }
	cd graphiql && npm ci --omit=dev --no-audit --no-fund
	touch $(GRAPHIQL_STAMP)

install: $(STAMP) $(GRAPHIQL_STAMP)

run: $(STAMP) $(GRAPHIQL_STAMP)
	$(BIN)/tenantql serve

# The browser test drives Debian's chromium; should it fail to install, that test says so.
chromium:
	@test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
		|| echo "warning: could not install chromium with apt-get: the GraphiQL browser test will fail" >&2

# The transaction pooler tests start Debian's pgbouncer themselves; without it, they fail and say why.
pgbouncer:
	@test -x /usr/sbin/pgbouncer || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer) \
		|| echo "warning: could not install pgbouncer with apt-get: the transaction pooler tests will fail" >&2

test: $(STAMP) $(GRAPHIQL_STAMP) chromium pgbouncer
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .tenantql .pytest_cache graphiql/node_modules

# Load benchmark (not part of `make test`): see bench/README.md. BENCH_SECONDS=5 shortens each run.
.PHONY: bench bench-scaling wrk

wrk:
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)

bench: $(STAMP) wrk
	$(BIN)/python -m bench.run

bench-scaling: $(STAMP) wrk
	$(BIN)/python -m bench.run --scaling

# Soak (not part of `make test`): mixed-tenant traffic against `tenantql serve --workers 2` for ten
# minutes, looking for leaks (SOAK_SECONDS=60 shortens it; see bench/soak.py), then the isolation
# fuzzing with many more examples than `make test` runs (SOAK_FUZZ_EXAMPLES, default 5000), drawn
# afresh on every soak rather than the fixed set `make test` runs.
.PHONY: soak

soak: $(STAMP) wrk
	$(BIN)/python -m bench.soak
	@if [ -d tests/isolation ]; then \
		echo "isolation fuzzing: TENANTQL_FUZZ_EXAMPLES=$${SOAK_FUZZ_EXAMPLES:-5000}"; \
		TENANTQL_FUZZ_EXAMPLES=$${SOAK_FUZZ_EXAMPLES:-5000} TENANTQL_FUZZ_RANDOM=1 \
			$(BIN)/pytest -p no:cacheprovider tests/isolation; \
	fi
