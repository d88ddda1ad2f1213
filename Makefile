# The front door: every task a user or CI runs is a target here. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_PATH ?= artifacts/iris.joblib
PYTEST_ARGS ?=

export MODEL_PATH

.PHONY: help venv run test bench gate lint fmt model lock up down clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The virtualenv is built from the hashed lock file, and rebuilt when the lock file changes.
$(STAMP): requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	@touch $@

venv: $(STAMP) ## Create .venv from the lock file

run: $(STAMP) $(if $(filter iris,$(MODEL)),$(MODEL_PATH)) ## Serve the API on http://localhost:8080 (PORT); embedded Redis unless REDIS_URL is set
	exec $(BIN)/gunicorn -c gunicorn.conf.py

model: $(MODEL_PATH) ## Train the scikit-learn iris model (MODEL=iris) into MODEL_PATH

$(MODEL_PATH): | $(STAMP)
	$(BIN)/python -m service.models.iris $@

test: $(STAMP) ## Run the test suite (starts its own redis-server processes)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) $(MODEL_PATH) ## Micro-benchmarks and the side-by-side run of tuned/seed/bound; writes reports/<timestamp>/
	$(BIN)/python -m bench run --model-path $(MODEL_PATH)

# The CI gate: a short side-by-side run, best of two rounds, against bench/gate.toml's floors.
gate: export BENCH_DURATION ?= 3
gate: export BENCH_ROUNDS ?= 2
gate: $(STAMP) ## The performance-regression gate CI runs (ratios to the seed build vs committed floors)
	$(BIN)/python -m bench gate

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP) ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(STAMP) ## Re-resolve requirements*.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --extra sklearn pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --extra sklearn --extra dev pyproject.toml -o requirements-dev.lock

up: ## docker compose up (Redis and the API, on port 8080)
	docker compose up --build -d

down: ## docker compose down
	docker compose down

clean: ## Remove the virtualenv, data, artifacts and caches
	rm -rf $(VENV) .data artifacts .pytest_cache .mypy_cache .ruff_cache
