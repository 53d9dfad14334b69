"""The load benchmark behind `make bench`: seeds, serves, drives with wrk, compares with an asyncpg ceiling.

Not part of `make test`: pytest collects only tests/, and nothing here is named test_*.
Entry point: `python -m bench.run` (see bench/README.md).
"""
