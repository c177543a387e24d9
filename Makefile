# replay: `make run` serves the shipped cassettes, `make test` runs every test.
# Each target installs what it needs into .venv first (Python >= 3.12, found by tools/find-python.sh).

PYTHON ?= $(shell sh tools/find-python.sh)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit test-e2e lint typecheck bench compat cassettes clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { sh tools/find-python.sh >/dev/null; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/python tools/run_demo.py --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check replay addons tests bench tools
	$(BIN)/ruff format --check replay addons tests bench tools
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e"

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m e2e

lint: $(STAMP)
	$(BIN)/ruff check replay addons tests bench tools
	$(BIN)/ruff format --check replay addons tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_replay.py
	$(BIN)/python bench/bench_throughput.py
	$(BIN)/python bench/bench_synthetic.py

# The in-process SDK matrix against the older SDK generations of PROTOCOLS.md (openai 1.x,
# anthropic 0.x), each in its own venv. Not part of `make test`.
COMPAT_OPENAI ?= 1.109.1 1.98.0
COMPAT_ANTHROPIC ?= 0.75.0
COMPAT_TESTS := tests/sdk/test_openai_sdk.py tests/sdk/test_responses_sdk.py tests/sdk/test_anthropic_sdk.py
compat:
	@test -n "$(PYTHON)" || { sh tools/find-python.sh >/dev/null; exit 1; }
	@set -e; for v in $(COMPAT_OPENAI); do \
	  venv=.venv-compat-openai-$$v; \
	  test -x $$venv/bin/python || $(PYTHON) -m venv $$venv; \
	  grep -vE '^(openai|anthropic)==' constraints.txt > $$venv/constraints.txt; \
	  $$venv/bin/python -m pip install -q --disable-pip-version-check -c $$venv/constraints.txt \
	    -e '.[test]' openai==$$v anthropic==$(COMPAT_ANTHROPIC); \
	  echo "== openai $$v, anthropic $(COMPAT_ANTHROPIC)"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider $(COMPAT_TESTS); \
	done

cassettes: $(STAMP)
	$(BIN)/python tools/record_examples.py

clean:
	rm -rf $(VENV) .venv-compat-* build *.egg-info
