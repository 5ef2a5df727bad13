# Two commands for a fresh machine: `make test` and `make demo` (README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint install clean mutate mutate-changed

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# SQLite by default; DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test
# TESTS: which tests by marker (pyproject.toml). By default all but the slow ones (the
# real processes of tests/e2e and the browser of tests/browser); CI also runs
# `make test TESTS=slow`, and TESTS=all runs everything.
TESTS ?= not slow
test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter all,$(TESTS)),,-m "$(TESTS)") $(PYTEST_ARGS)
	node --test miniprogram/test/*.test.js

# The whole purchase on SQLite against the local WeChat simulator; DEMO_ONCE=1 exits after.
demo: $(STAMP)
	$(BIN)/python -m demo

# Notify throughput, order latency, connections, queries and growth against a wechatpy
# peer, on PostgreSQL (docs/PERFORMANCE.md). BENCH_ARGS="--repeat 3 --growth 1000000".
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Mutation testing of the money path (pyproject.toml [tool.mutmut] only_mutate) on SQLite,
# with the money path's own tests; every file must keep 95 %, equivalent mutants (listed
# with why in mutation/equivalents.toml) left out. A passing run records each file's
# content and score in mutation/baseline. MUTATE_FILES="payments/services.py" for
# some files only; MUTATE_CHILDREN=2 only on an otherwise idle machine (docs/RELIABILITY.md).
MUTATE_CHILDREN ?= 1
mutate: $(STAMP)
	MUTATE_CHILDREN=$(MUTATE_CHILDREN) $(BIN)/python mutation/mutate.py $(MUTATE_FILES)

# Only the money-path files whose content is not the one mutation/baseline recorded.
mutate-changed: $(STAMP)
	MUTATE_CHILDREN=$(MUTATE_CHILDREN) $(BIN)/python mutation/mutate.py --changed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
