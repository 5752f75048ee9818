# Two commands do all the set-up on a fresh machine (see README):
#   make demo   install, then plan and render the shipped examples (no cluster needed)
#   make test   install, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHECKOV_VENV ?= .venv-checkov
IMAGE ?= ghcr.io/slm-operator/slm-operator
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: install checkov demo test lint actionlint typecheck unit contract cluster-test golden crd \
	check-catalog bench-gateway bench-operator bench-render lock image e2e sim-build cluster cluster-down clean

# Installs exactly the versions pinned in constraints.txt (`make lock` refreshes it), so two
# installs of the same commit, here, in CI and in the image, get the same packages.
$(BIN)/slmctl: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PIP_CONSTRAINT=constraints.txt $(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/slmctl

# checkov pins packaging<24 and an old python-dateutil, which clash with pytest 9 and
# kubernetes 37, so it lives in its own virtual environment.
# Pinned like the main environment, in constraints-checkov.txt (`make lock`).
CHECKOV_REQUIREMENT := checkov>=3.2,<4
$(CHECKOV_VENV)/bin/checkov: constraints-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -c constraints-checkov.txt '$(CHECKOV_REQUIREMENT)'
	touch $@

checkov: $(CHECKOV_VENV)/bin/checkov

demo: install
	$(BIN)/slmctl plan examples/
	$(BIN)/slmctl render examples/phi-4-mini-gpu.yaml

# The GitHub Actions workflows, checked by actionlint (with shellcheck on their run: scripts).
# actionlint is built from its Go module (github.com/rhysd/actionlint) into the tools cache.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(HOME)/.cache/slm-operator/tools/actionlint-$(ACTIONLINT_VERSION)/actionlint
$(ACTIONLINT):
	GOBIN=$(dir $@) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

actionlint: install $(ACTIONLINT)
	$(ACTIONLINT) -shellcheck $(BIN)/shellcheck .github/workflows/*.yaml

lint: install $(ACTIONLINT)
	$(BIN)/ruff check operator tests bench scripts
	$(BIN)/ruff format --check operator tests bench scripts
	$(BIN)/lint-imports
	$(ACTIONLINT) -shellcheck $(BIN)/shellcheck .github/workflows/*.yaml

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

contract: install checkov
	$(BIN)/pytest tests/contract

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

bench-render: install
	$(BIN)/python -m bench.render

# Re-resolve every dependency (runtime and test extras, and the build backend) within the
# ranges of pyproject.toml in a fresh virtual environment and pin the result in
# constraints.txt; the same for checkov in constraints-checkov.txt. Review the diff, commit it.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet "$$(sed -n 's/^requires = \["\(.*\)"\]/\1/p' pyproject.toml)" '.[test]'
	{ printf '%s\n' '# Pinned versions of every dependency (runtime, test extras, build backend), resolved' \
	    '# within the ranges of pyproject.toml by `make lock` on Python 3.11. Do not edit by hand.'; \
	  $(LOCK_VENV)/bin/pip freeze --all --exclude pip --exclude slm-operator; } > constraints.txt
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet '$(CHECKOV_REQUIREMENT)'
	{ printf '%s\n' '# Pinned versions of checkov and its dependencies (its own virtual environment, see' \
	    '# the Makefile), resolved by `make lock` on Python 3.11. Do not edit by hand.'; \
	  $(LOCK_VENV)/bin/pip freeze --exclude pip; } > constraints-checkov.txt
	rm -rf $(LOCK_VENV)

image:
	docker build -t $(IMAGE):$(VERSION) .

# End-to-end on kind (needs docker, kind, helm, kubectl; skips cleanly without them).
e2e:
	bash e2e/run.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOCK_VENV) .mypy_cache .ruff_cache .pytest_cache $(SIM_DIR)
