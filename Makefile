# The two commands of this project.  Both work on a fresh machine with Python >= 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stiscube-installed
PYTEST_ARGS ?= -n 2

.PHONY: test demo install lint clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.1"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests of the monitoring sites use Debian's chromium (never a downloaded one):
# installed with apt-get when missing and apt-get runs as root or through sudo; otherwise
# those tests fail with one line saying how to get it.
CHROMIUM := /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || ! command -v apt-get >/dev/null || { \
	  SUDO=; if [ "$$(id -u)" -ne 0 ]; then command -v sudo >/dev/null || exit 0; SUDO="sudo -n"; fi; \
	  echo "installing Debian's chromium for the browser tests (apt-get install chromium)"; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || echo "could not install chromium with apt-get; the browser tests will fail"; }

# `make demo` runs small simulated inputs (minutes, ~30 MB left in demo-output);
# `make demo DEMO_ARGS=--full` the full-size STIS frames (see examples/demo.py --help)
DEMO_ARGS ?=

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out demo-output $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check stores stiscube cte tests benchmarks examples
	# numpydoc Parameters sections and mypy, against tests/baselines (which only shrink)
	$(BIN)/python -m pytest -q -p no:xdist tests/test_docs.py

clean:
	rm -rf demo-output .pytest_cache
