# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing, installs torch==2.13.0 first (a CPU build; without the pin
# pip would pull a multi-GB CUDA build), then the project, then does its job.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test test-slow lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/slimkit demo

test: $(STAMP)
	$(BIN)/ruff check slimkit tests benchmarks
	$(BIN)/python -m pytest

test-slow: $(STAMP)  # exit 5 = no test marked slow yet: not a failure
	$(BIN)/python -m pytest -m slow || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check slimkit tests benchmarks

clean:
	rm -rf $(VENV) .slimkit .pytest_cache .ruff_cache
