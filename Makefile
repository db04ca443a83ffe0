# Two entry points for a fresh machine (each installs what it needs into .venv):
#   make demo   - run the quickstart suite on the built-in glyphs dataset, then the report
#   make test   - lint, the whole test suite (slow tests included) and the CPU memory budgets
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memcomp-installed

.PHONY: install demo test test-fast lint check-budgets clean

$(STAMP): pyproject.toml examples/metasgd/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' -e examples/metasgd  # the example plugin (README Extending)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/memcomp run suites/quickstart.yaml --out results
	$(BIN)/memcomp report results/quickstart

lint: $(STAMP)
	$(BIN)/ruff check memcomp tests benchmarks
	$(BIN)/ruff format --check memcomp tests benchmarks
	$(BIN)/lint-imports  # import contracts in .importlinter (layers, no circles, report without torch)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

check-budgets: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/memcomp check budgets/ci.yaml --device cpu --junit memcomp-budgets.xml

test: lint $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" -n 2 --dist loadgroup
	$(MAKE) check-budgets

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
