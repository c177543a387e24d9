# replay: `make run` serves the shipped cassettes, `make test` runs every test.
# Each target installs what it needs into .venv first (Python >= 3.12, found by tools/find-python.sh).

PYTHON ?= $(shell sh tools/find-python.sh)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit test-e2e lint typecheck bench compat compat-frameworks cassettes clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { sh tools/find-python.sh >/dev/null; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/python tools/run_demo.py --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check replay addons tests bench tools compat
	$(BIN)/ruff format --check replay addons tests bench tools compat
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not e2e"

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m e2e

lint: $(STAMP)
	$(BIN)/ruff check replay addons tests bench tools compat
	$(BIN)/ruff format --check replay addons tests bench tools compat

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

# The framework matrix (docs/frameworks.md): LangChain, instructor, LiteLLM, pydantic-ai, the
# OpenAI Agents SDK and LlamaIndex, each venv pinned by compat/constraints-NAME.txt, run
# through real mitmdump proxies over an empty store. RECORD_REPLAY=1 adds the record-then-
# replay pass. Not part of `make test`.
FW_RUNS ?= langchain=langchain,instructor litellm=litellm agents=pydantic_ai,agents llamaindex=llamaindex
compat-frameworks: $(STAMP)
	@test -n "$(PYTHON)" || { sh tools/find-python.sh >/dev/null; exit 1; }
	@set -e; runs=""; for run in $(FW_RUNS); do \
	  name=$${run%%=*}; venv=.venv-fw-$$name; \
	  test -x $$venv/bin/python || $(PYTHON) -m venv $$venv; \
	  if ! cmp -s compat/constraints-$$name.txt $$venv/.installed; then \
	    $$venv/bin/python -m pip install -q --disable-pip-version-check \
	      -c compat/constraints-$$name.txt -r compat/requirements-$$name.txt; \
	    cp compat/constraints-$$name.txt $$venv/.installed; \
	  fi; \
	  runs="$$runs $$venv=$${run#*=}"; \
	done; \
	$(BIN)/python compat/run_frameworks.py $$runs $(if $(RECORD_REPLAY),--record-replay)

cassettes: $(STAMP)
	$(BIN)/python tools/record_examples.py

clean:
	rm -rf $(VENV) .venv-compat-* .venv-fw-* build *.egg-info
