# Two commands do all the set-up on a fresh machine (see README):
#   make demo   install, then plan and render the shipped examples (no cluster needed)
#   make test   install, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHECKOV_VENV ?= .venv-checkov
IMAGE ?= ghcr.io/slm-operator/slm-operator
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: install checkov demo test lint typecheck unit contract integration cluster-test golden crd check-catalog \
	bench-gateway bench-operator image e2e sim-build cluster cluster-down clean

$(BIN)/slmctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/slmctl

# checkov pins packaging<24 and an old python-dateutil, which clash with pytest 9 and
# kubernetes 37, so it lives in its own virtual environment.
$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'
	touch $@

checkov: $(CHECKOV_VENV)/bin/checkov

demo: install
	$(BIN)/slmctl plan examples/
	$(BIN)/slmctl render examples/phi-4-mini-gpu.yaml

lint: install
	$(BIN)/ruff check operator tests bench scripts
	$(BIN)/ruff format --check operator tests bench scripts
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

contract: install checkov
	$(BIN)/pytest tests/contract

integration: install
	$(BIN)/pytest tests/integration

# The simulated cluster (e2e/sim/README.md): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok, kubectl and helm, built from Go modules into a cache on first use.
SIM_DIR ?= .simcluster

sim-build:
	bash e2e/sim/cluster.sh build

cluster: install sim-build
	bash e2e/sim/cluster.sh up $(SIM_DIR)

cluster-down:
	bash e2e/sim/cluster.sh down $(SIM_DIR)

cluster-test: install sim-build
	$(BIN)/pytest tests/cluster

test: install checkov lint typecheck check-catalog sim-build
	$(BIN)/pytest

# Recount every catalog entry (parameters, KV bytes per token, checkpoint sizes) from its
# architecture and fail on a stated size more than 3 % off that is not marked as an estimate.
check-catalog: install
	$(BIN)/python scripts/check_catalog.py

# Regenerate committed artifacts from the code (review the diff afterwards).
golden: install
	$(BIN)/python tests/golden/regenerate.py

# The CRD, the API reference, and the chart's generated files (CRD copy, RBAC, Argo CD patch).
crd: install
	$(BIN)/slmctl crd > crds/slm.dev_smalllanguagemodels.yaml
	$(BIN)/python -m slm_operator.api.crd --markdown > docs/api.md
	$(BIN)/python scripts/sync_chart_files.py

bench-gateway: install
	$(BIN)/python -m bench.gateway

# The operator at 100 and 1000 models on the simulated cluster (e2e/sim/cluster.sh), side by side
# with a minimal kopf baseline; BENCH_OPERATOR_ARGS passes options (see python -m bench.operator -h).
bench-operator: install sim-build
	$(BIN)/python -m bench.operator $(BENCH_OPERATOR_ARGS)

image:
	docker build -t $(IMAGE):$(VERSION) .

# End-to-end on kind (needs docker, kind, helm, kubectl; skips cleanly without them).
e2e:
	bash e2e/run.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache $(SIM_DIR)
