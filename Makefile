PYTHON ?= python3

.PHONY: demo test lint bench install

# Installs deploy-orchestrator (with the embedded PostgreSQL) and runs the demo on the local platform.
demo:
	bash .ci/install.sh demo
	deploy-orchestrator demo

# Installs everything the tests need (PostgreSQL server included) and runs them.
test:
	bash .ci/install.sh test
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	ruff check .
	ruff format --check .
	mypy
	check-jsonschema --builtin-schema vendor.github-actions action.yml
	hadolint Dockerfile
	lint-imports

bench:
	$(PYTHON) bench/switch.py
	$(PYTHON) bench/migrations.py
	$(PYTHON) bench/verify.py
	$(PYTHON) bench/outbox.py
	$(PYTHON) bench/digitalocean.py
