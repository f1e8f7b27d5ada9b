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
        kind-up kind-load kind-down e2e e2e-kind clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## Build .venv with fleetcast and its dev tools (uv, from uv.lock)

$(VENV)/.installed: pyproject.toml uv.lock scripts/bootstrap.sh
	@scripts/bootstrap.sh
	@touch $@

deps: install ## Fetch and build test infrastructure: Debian packages, Kafka jars, Kubernetes binaries and CRDs, Centrifugo, Jaeger and promtool, browser
	@scripts/system-deps.sh
	@tools/kafka/fetch.sh >/dev/null
	@tools/k8s/build.sh >/dev/null
	@tools/k8s/crds.sh >/dev/null
	@tools/centrifugo/build.sh >/dev/null
	@tools/observe/build.sh >/dev/null
	@scripts/web-deps.sh

# Only what `make run` needs: redis-server, the Kafka jars and the console's
# Socket.IO and Leaflet bundles (cache hits after the first time); not chromium.
run: install ## Start Redis, Kafka, consumer, gateway, a demo fleet and the console on 127.0.0.1 (Ctrl-C stops all)
	@scripts/system-deps.sh redis
	@tools/kafka/fetch.sh >/dev/null
	@scripts/web-deps.sh
	@$(PY) -m fleetcast.devtools.run

test: deps images lint ## Run the whole suite: lint, unit, integration (real Redis/Kafka), operator and e2e (real pods)
	@$(PY) -m pytest -m "not kind" $(PYTEST_ARGS)

test-unit: install ## Run only the fast tests that need no server
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff, mypy --strict, import and layer contracts, drift of generated files (CRD, schema, manifests, docs)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports
	@$(PY) scripts/crd.py --check
	@$(PY) -m pytest -q -m drift tests/unit

bench: deps ## Run the benchmarks and print the figures (writes bench/results/); builds Centrifugo once
	@tools/centrifugo/build.sh >/dev/null
	@$(PY) -m bench

images: install ## Build the images (fleetcast, e2e Redis/Kafka, pause) from Debian packages; starts Docker if needed
	@scripts/images.sh

manifests: ## Regenerate the CRD (from the operator's models), values.schema.json and manifests/
	@scripts/manifests.sh

cluster-up: ## Start a local control plane and a real node (NODES=kwok: two fake nodes instead)
	@tools/k8s/cluster.sh up

cluster-down: ## Stop the local control plane
	@tools/k8s/cluster.sh down

kind-up: ## Create a kind cluster (needs Docker)
	@kind create cluster --name fleetcast --config tests/e2e/kind.yaml

kind-load: ## Load the images `make images` built into the kind cluster
	@source tools/images/images.env && kind load docker-image --name fleetcast "$${IMAGE:-$$FLEETCAST_IMAGE}" "$$E2E_REDIS_IMAGE" "$$E2E_KAFKA_IMAGE"

kind-down: ## Delete the kind cluster
	@kind delete cluster --name fleetcast

e2e: deps images ## Run the e2e suite: kwok control plane and a real node here (or FLEETCAST_TEST_KUBECONFIG's cluster)
	@$(PY) -m pytest tests/e2e -m "e2e and not kind" $(PYTEST_ARGS)

e2e-kind: install ## Run the e2e suite on kind (needs Docker; make images kind-up kind-load first)
	@mkdir -p .run && kind get kubeconfig --name fleetcast > .run/kind-fleetcast.kubeconfig && FLEETCAST_TEST_KUBECONFIG=$(CURDIR)/.run/kind-fleetcast.kubeconfig FLEETCAST_E2E_IMAGE=$${FLEETCAST_E2E_IMAGE:-fleetcast:dev} $(PY) -m pytest tests/e2e -m "e2e" $(PYTEST_ARGS)

clean: ## Remove the venv and local build output (keeps $(FLEETCAST_CACHE))
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .artifacts .run
