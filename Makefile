# The front door: every task a user or CI runs is a target here. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_PATH ?= artifacts/iris.joblib
PYTEST_ARGS ?=
PROMETHEUS_PORT ?= 9090
DOCS_PORT ?= 8000

export MODEL_PATH

.PHONY: help venv run worker cluster sentinel test test-quick bench bench-settings bench-instructions bench-compare bench-topologies bench-micro bench-micro-baseline gate gate-baseline k8s-validate lint fmt model lock locust loadtest prometheus up down clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The virtualenv is built from the hashed lock file, and rebuilt when the lock file changes.
$(STAMP): requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	@touch $@

venv: $(STAMP) ## Create .venv from the lock file

run: $(STAMP) $(if $(filter iris,$(MODEL)),$(MODEL_PATH)) ## Serve the API on http://localhost:8080 (PORT); embedded Redis unless REDIS_URL is set
	exec $(BIN)/python -m service serve

worker: $(STAMP) $(if $(filter iris,$(MODEL)),$(MODEL_PATH)) ## Standalone stream workers (WORKER_CONCURRENCY of them) on REDIS_URL, or on `make run`'s Redis
	exec $(BIN)/python -m service worker

cluster: $(STAMP) ## A local Redis Cluster (3 primaries, 3 replicas) on ports 7000-7005 (CLUSTER_PORT), data in DATA_DIR/cluster; prints its REDIS_URL
	exec $(BIN)/python -m service cluster

sentinel: $(STAMP) ## A local Sentinel group: primary 6390, replica 6391, sentinels 26390-26392 (SENTINEL_PORT); prints its REDIS_URL
	exec $(BIN)/python -m service sentinel

model: $(MODEL_PATH) ## Train the scikit-learn iris model (MODEL=iris) into MODEL_PATH

$(MODEL_PATH): | $(STAMP)
	$(BIN)/python -m service train-iris $@

locust: $(STAMP) $(if $(filter iris,$(MODEL)),$(MODEL_PATH)) ## Locust web UI on http://localhost:8089 against TARGET_URL (default: the service on PORT, started if none)
	$(BIN)/python -m loadtests.launch ui

loadtest: $(STAMP) $(if $(filter iris,$(MODEL)),$(MODEL_PATH)) ## Headless load test (SCENARIO, SHAPE, LOCUST_*); CSV and HTML under reports/; thresholds decide the exit code
	$(BIN)/python -m loadtests.launch headless

test: $(STAMP) ## Run the test suite (starts its own redis-server processes)
	$(BIN)/pytest $(PYTEST_ARGS)

QUICK := not (served or browser or prometheus or wrk or valgrind or locust)
test-quick: $(STAMP) ## The in-process subset: no served processes, browser, Prometheus, wrk, valgrind or Locust
	$(BIN)/pytest -m "$(QUICK)" $(PYTEST_ARGS)

bench: $(STAMP) $(MODEL_PATH) ## Micro-benchmarks and the side-by-side run of tuned/seed/bound; writes reports/<timestamp>/
	$(BIN)/python -m bench run --model-path $(MODEL_PATH)

bench-settings: $(STAMP) ## Measure the server settings (workers, keep-alive, backlog, concurrency limit, consumers, batch size) against their alternatives
	$(BIN)/python -m bench settings $(if $(ONLY),--only "$(ONLY)")

bench-instructions: $(STAMP) ## Instructions per request (sync, submit, poll) and per finished job, tuned vs bound, counted by valgrind
	$(BIN)/python -m bench instructions

# The CI gate: the exact Redis round trips and response bytes (tests/bench/test_gate_counts.py),
# instructions per request against bench/instructions.toml, then a short side-by-side run, the
# median of two interleaved rounds, against bench/gate.toml's floors.
gate: export BENCH_DURATION ?= 3
gate: export BENCH_ROUNDS ?= 2
gate: $(STAMP) ## The performance-regression gate CI runs (exact counts, instructions vs baselines, ratio floors)
	$(BIN)/pytest -q -p no:cacheprovider tests/bench/test_gate_counts.py
	$(BIN)/python -m bench gate

# This working tree against BASE (default: the merge base with main), side by side in one run:
# each figure's median same-round ratio, its interval and a verdict (docs/benchmarks.md).
bench-compare: $(STAMP) ## This tree vs BASE=<git ref> side by side: ratios, intervals, verdicts; reports/compare-<timestamp>/
	$(BIN)/python -m bench compare $(if $(BASE),--base "$(BASE)")

bench-topologies: $(STAMP) ## One Redis vs a 3+3 Redis Cluster: jobs/s, polls/s, Redis and API CPU per request, WAIT's latency; reports/topologies-<timestamp>/
	$(BIN)/python -m bench.topologies

# The micro-benchmarks (bench/micro) against a saved baseline of their own, pytest-benchmark's
# storage under MICRO_STORAGE: bench-micro-baseline saves one; bench-micro compares with the
# latest saved and fails when a benchmark is slower than BENCH_MICRO_FAIL allows (its
# --benchmark-compare-fail syntax: mean:15% or min:0.001). Timings, not counts: save and
# compare on the same machine.
MICRO_STORAGE ?= .data/benchmarks
BENCH_MICRO_FAIL ?= mean:15%
MICRO = $(BIN)/pytest bench/micro -q -p no:cacheprovider --benchmark-only --benchmark-columns=mean,ops --benchmark-storage=file://$(MICRO_STORAGE) $(MICRO_ARGS)

bench-micro: $(STAMP) ## The micro-benchmarks against the saved baseline; fails past BENCH_MICRO_FAIL (mean:15%)
	@test -n "$$(find $(MICRO_STORAGE) -name '*.json' 2>/dev/null)" || { echo "bench-micro: no baseline saved in $(MICRO_STORAGE): make bench-micro-baseline first" >&2; exit 2; }
	$(MICRO) --benchmark-compare --benchmark-compare-fail=$(BENCH_MICRO_FAIL)

bench-micro-baseline: $(STAMP) ## Save the micro-benchmarks as the baseline bench-micro compares with
	$(MICRO) --benchmark-save=baseline

gate-baseline: $(STAMP) ## Count the instructions again into bench/instructions.toml and show the diff to commit
	$(BIN)/python -m bench baseline
	@git --no-pager diff -- bench/instructions.toml

# kubectl's kustomize renders each overlay of deploy/kubernetes; every object is validated
# offline against the Kubernetes schemas (or KEDA's CRDs) and checked against the service.
k8s-validate: $(STAMP) ## Render the Kubernetes manifests (kubectl) and validate them offline, strictly
	$(BIN)/pytest -q -p no:cacheprovider tests/deploy/test_kubernetes.py

lint: $(STAMP) ## ruff, mypy --strict, and the import layers (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

fmt: $(STAMP) ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(STAMP) ## Re-resolve requirements*.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --extra sklearn pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --extra loadtest pyproject.toml -o requirements-loadtest.lock
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --extra sklearn --extra loadtest --extra dev pyproject.toml -o requirements-dev.lock

# The documentation site (mkdocs.yml, docs/). NO_MKDOCS_2_WARNING quiets a banner about MkDocs's
# future that every run would otherwise print.
.PHONY: docs docs-build
docs: $(STAMP) ## Serve the documentation on http://127.0.0.1:8000 (DOCS_PORT), rebuilt on every edit
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build: $(STAMP) ## Build the documentation into site/, strictly: a broken link or anchor fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The compose file's Prometheus configuration, pointed at `make run` on this host.
prometheus: ## Prometheus on PROMETHEUS_PORT scraping `make run` on PORT, with the alert rules (Debian package prometheus)
	@command -v prometheus >/dev/null || { echo "prometheus not found: apt-get install prometheus" >&2; exit 1; }
	mkdir -p .data/prometheus
	sed 's/"api:8080"/"127.0.0.1:$(or $(PORT),8080)"/' dashboards/prometheus/prometheus.yml > .data/prometheus/prometheus.yml
	cp dashboards/prometheus/alerts.yml .data/prometheus/alerts.yml
	exec prometheus --config.file=.data/prometheus/prometheus.yml --storage.tsdb.path=.data/prometheus/data --web.listen-address=127.0.0.1:$(PROMETHEUS_PORT)

up: ## docker compose up (Redis, the API on 8080, Prometheus on 9090, Grafana on 3000)
	docker compose up --build -d

down: ## docker compose down
	docker compose down

clean: ## Remove the virtualenv, data, artifacts and caches
	rm -rf $(VENV) .data artifacts reports .pytest_cache .mypy_cache .ruff_cache
