# The two commands of this project.  Both work on a fresh machine with Python >= 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stiscube-installed
PYTEST_ARGS ?= -n 2

.PHONY: test demo install lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.1"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# `make demo` runs small simulated inputs (minutes, ~30 MB left in demo-output);
# `make demo DEMO_ARGS=--full` the full-size STIS frames (see examples/demo.py --help)
DEMO_ARGS ?=

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out demo-output $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check stores stiscube cte tests benchmarks examples

clean:
	rm -rf demo-output .pytest_cache
