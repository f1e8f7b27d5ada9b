# fleetcast: a short list of verbs. `make` alone lists them.
#
# Everything downloaded or built (uv, Kafka jars, Kubernetes binaries, npm
# packages) is cached outside the clone in $(FLEETCAST_CACHE), so a fresh
# clone on a machine that has run this before rebuilds nothing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export FLEETCAST_CACHE ?= $(HOME)/.cache/fleetcast
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help install deps run test test-unit lint bench images manifests cluster-up cluster-down \
        kind-up kind-down e2e e2e-kind clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## Build .venv with fleetcast and its dev tools (uv, from uv.lock)

$(VENV)/.installed: pyproject.toml uv.lock scripts/bootstrap.sh
	@scripts/bootstrap.sh
	@touch $@

deps: install ## Fetch and build test infrastructure: redis-server, Kafka jars, Kubernetes binaries and CRDs, browser
	@scripts/system-deps.sh
	@tools/kafka/fetch.sh >/dev/null
	@tools/k8s/build.sh >/dev/null
	@tools/k8s/crds.sh >/dev/null
	@scripts/web-deps.sh

run: install ## Start Redis, Kafka, consumer, gateway and a demo fleet on 127.0.0.1 (Ctrl-C stops all)
	@scripts/system-deps.sh redis
	@tools/kafka/fetch.sh >/dev/null
	@$(PY) -m fleetcast.devtools.run

test: deps lint ## Run the whole suite: lint, unit, integration (real Redis/Kafka), operator and e2e (real API server)
	@$(PY) -m pytest -m "not kind" $(PYTEST_ARGS)

test-unit: install ## Run only the fast tests that need no server
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff, mypy --strict, import contracts, generated CRD and values schema drift
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports
	@$(PY) scripts/crd.py --check
	@$(PY) scripts/values_schema.py --check

bench: deps ## Run the benchmarks and print the figures (writes bench/results/)
	@$(PY) -m bench

images: ## Build the container image(s) (needs a Docker engine)
	@scripts/images.sh

manifests: ## Regenerate the CRD (from the operator's models), values.schema.json and manifests/
	@scripts/manifests.sh

cluster-up: ## Start a local control plane (etcd, apiserver, controller-manager, scheduler, kwok)
	@tools/k8s/cluster.sh up

cluster-down: ## Stop the local control plane
	@tools/k8s/cluster.sh down

kind-up: ## Create a kind cluster (needs Docker)
	@kind create cluster --name fleetcast --config tests/e2e/kind.yaml

kind-down: ## Delete the kind cluster
	@kind delete cluster --name fleetcast

e2e: deps ## Run the e2e suite against the local control plane (or KUBECONFIG's cluster)
	@$(PY) -m pytest tests/e2e -m "e2e and not kind" $(PYTEST_ARGS)

e2e-kind: install ## Run the e2e suite with real pods on kind (needs Docker)
	@mkdir -p .run && kind get kubeconfig --name fleetcast > .run/kind-fleetcast.kubeconfig && FLEETCAST_TEST_KUBECONFIG=$(CURDIR)/.run/kind-fleetcast.kubeconfig FLEETCAST_E2E_IMAGE=$${FLEETCAST_E2E_IMAGE:-fleetcast:dev} $(PY) -m pytest tests/e2e -m "e2e" $(PYTEST_ARGS)

clean: ## Remove the venv and local build output (keeps $(FLEETCAST_CACHE))
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .artifacts .run
