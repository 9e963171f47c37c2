# kfp-ml-pipelines: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Your own compile-time settings can live in local.mk (git-ignored), so that
# `make compile` and `make test` always see the same ones, e.g.
#   IMAGE = ghcr.io/you/kfp-ml-pipelines
#   IMAGE_PULL_SECRET = regcred
#   WORKSPACE_STORAGE_CLASS = standard-rwo
#   GPU_NODE_SELECTOR = cloud.google.com/gke-accelerator=nvidia-l4
-include local.mk

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

PIPELINE ?= sp500
COMPILED ?= compiled
PARAMS ?=
MODEL ?=
ARGS ?=
IMAGE ?= ghcr.io/kfp-ml-pipelines/kfp-ml-pipelines
IMAGE_GPU ?= $(IMAGE)-gpu
# Local runs: RUNNER=docker runs every step in a container of $(IMAGE):<version>.
RUNNER ?=
# Who the steps run as, locally in containers and in the compiled packages:
# root (uid 0, no capabilities; works on root-owned volumes) or nonroot
# (uid 1000, for clusters that give an fsGroup or pre-owned volumes).
STEP_USER ?= root
# `make image`: the Python base image (built from Debian's packages when it
# cannot be pulled), and pip's index and CA bundle for the build (default: the
# host pip's configuration), passed to the build as secrets.
PYTHON_IMAGE ?=
PIP_INDEX_URL ?=
PIP_CA_BUNDLE ?=
# Compile-time cluster settings (components/settings/cluster.py): the run
# workspace claim's access mode and storage class (empty: the cluster's
# default class), and the Secret every step's pod pulls the image with.
WORKSPACE_ACCESS_MODE ?= ReadWriteOnce
WORKSPACE_STORAGE_CLASS ?=
IMAGE_PULL_SECRET ?=
export IMAGE IMAGE_GPU WORKSPACE_ACCESS_MODE WORKSPACE_STORAGE_CLASS IMAGE_PULL_SECRET STEP_USER
export PYTHON_IMAGE PIP_INDEX_URL PIP_CA_BUNDLE
# MLflow tracking of local runs (pipelines/local/tracking.py): TRACKING=runs/mlflow (a folder),
# sqlite:///path/mlflow.db or http://host:port; empty: no tracking. MLflow's server and UI get
# their own environment: the full mlflow package pins pyarrow<26, below the project's pin.
TRACKING ?=
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_SERVER ?= $(abspath $(MLFLOW_VENV))/bin/mlflow
export TRACKING MLFLOW_SERVER
# Settings the code reads from the environment: exported when set (in local.mk, on make's command
# line or in the environment), and left unset otherwise, because unset and empty differ
# (GPU_NODE_SELECTOR unset: the default selector; empty: none).
ENVIRONMENT_SETTINGS := GPU_COUNT GPU_NODE_SELECTOR GPU_TOLERATION DOCKER REGISTRY FETCH_RETRY_BUDGET_S \
	KFP_HOST KFP_TOKEN KF_PIPELINES_SA_TOKEN_PATH KFP_NAMESPACE KFP_EXPERIMENT WAIT MNIST_SOURCE EXPLORE_SMALL EXPLORE_ROOT
export $(foreach setting,$(ENVIRONMENT_SETTINGS),$(if $(filter undefined,$(origin $(setting))),,$(setting)))
# The model store claim (deploy/model-store-pvc.yaml), made by `make model-store`.
NAMESPACE ?= kubeflow
MODEL_STORE_ACCESS_MODE ?= ReadWriteOnce
MODEL_STORE_STORAGE_CLASS ?=
MODEL_STORE_SIZE ?= 10Gi

# Ctrl-C reaches make and the command together: the command says `interrupted: …` in one line and
# exits 130; make, stopped by the same signal, then adds no `make: *** [run] Interrupt` of its own
# (its own exit status is still 130). Any other failure keeps its exit code.
SAID_IF_INTERRUPTED = || { status=$$?; [ $$status -eq 130 ] || exit $$status; }

.PHONY: help setup compile run upload schedule schedule-list schedule-pause schedule-resume schedule-delete \
	serve predict promote rollback test bench lint docs image publish container-test model-store model-store-manifest deployer deployer-manifest trainer-runtime trainer-runtime-manifest search-manifest clean \
	tracking-ui notebook dashboard

# `make help` lists the targets in two groups, each target with its `## ` description.
LOCAL_TARGETS := setup compile run tracking-ui notebook serve predict promote rollback dashboard test container-test bench lint docs image clean help
CLUSTER_TARGETS := image publish upload run schedule schedule-list schedule-pause schedule-resume schedule-delete \
	model-store model-store-manifest deployer deployer-manifest trainer-runtime trainer-runtime-manifest \
	search-manifest promote rollback
SHOW_TARGETS = for target in $(1); do grep -hE "^$$target:.*\#\# " $(MAKEFILE_LIST) | \
	awk -F ':.*\#\# ' '{printf "  make %-25s %s\n", $$1, $$2}'; done

help: ## list the targets
	@echo "On this machine (runs in runs/, models in model_store/):"
	@$(call SHOW_TARGETS,$(LOCAL_TARGETS))
	@echo
	@echo "On a Kubeflow cluster (KFP_HOST=<Pipelines URL>, or kubectl's current cluster):"
	@$(call SHOW_TARGETS,$(CLUSTER_TARGETS))
	@echo
	@echo "Variables (now):"
	@printf "  %-24s %s\n" PIPELINE "$(PIPELINE)" PARAMS "$(or $(PARAMS),(name=value ...))" VERBOSE "$(or $(VERBOSE),(1: run shows kfp's whole log))" MODEL "$(MODEL)" ARGS "$(ARGS)" \
		KFP_HOST "$${KFP_HOST:-(unset: run locally)}" IMAGE "$(IMAGE)" IMAGE_GPU "$(IMAGE_GPU)" \
		WORKSPACE_ACCESS_MODE "$(WORKSPACE_ACCESS_MODE)" WORKSPACE_STORAGE_CLASS "$(WORKSPACE_STORAGE_CLASS)" \
		IMAGE_PULL_SECRET "$(IMAGE_PULL_SECRET)" NAMESPACE "$(NAMESPACE)" \
		RUNNER "$(or $(RUNNER),(docker: each step of a local run in a container))" STEP_USER "$(STEP_USER)" \
		TRACKING "$(or $(TRACKING),(a folder, sqlite:///… or http://…: local runs into MLflow))"

# The stamp is rebuilt whenever pyproject.toml or requirements-no-deps.txt changes, so
# `make run`/`make test` on a fresh clone set themselves up.
$(VENV)/.installed: pyproject.toml requirements-no-deps.txt
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "Python 3.11 or 3.12 is needed, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==26.3  # pinned like every package: a new pip may resolve the pins anew
	$(PY) -m pip install --quiet -e '.[local,test]'
	$(PY) -m pip install --quiet --no-deps -r requirements-no-deps.txt
	touch $@

$(MLFLOW_VENV)/.installed: requirements-mlflow-server.txt
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet -r requirements-mlflow-server.txt
	touch $@

setup: $(VENV)/.installed $(MLFLOW_VENV)/.installed ## create .venv (the package, pinned) and .venv-mlflow (MLflow's server)

compile: setup ## compile every pipeline (and GPU variant) into compiled/, and their parameter tables and graphs into docs/
	$(PY) -m pipelines compile --output-dir $(COMPILED)
	$(PY) -m pipelines.docs_tables --compiled-dir $(COMPILED)
	$(PY) -m pipelines.docs_graphs --compiled-dir $(COMPILED)

run: setup ## run PIPELINE locally, or on KFP_HOST when set (WAIT=1 waits, GPU=1 the -gpu variant), with PARAMS="name=value ..."; TRACKING=… into MLflow
	@$(PY) -m pipelines run $(PIPELINE) $(PARAMS) $(if $(GPU),--gpu) $(if $(RUNNER),--runner $(RUNNER) --container-user $(STEP_USER)) $(if $(VERBOSE),--verbose) $(SAID_IF_INTERRUPTED)

tracking-ui: setup ## MLflow's UI on http://127.0.0.1:5000 for the local store TRACKING (default runs/mlflow)
	$(PY) -m pipelines.local.tracking "$(or $(TRACKING),runs/mlflow)"

# JupyterLab comes from the `notebook` extra, installed on first use (the tests need only nbclient).
# Jupyter refuses to start as root unless told to: in a container, root is the usual user.
notebook: setup ## open the exploration notebook (notebooks/explore.ipynb) in JupyterLab
	test -x $(VENV)/bin/jupyter-lab || $(PY) -m pip install --quiet -e '.[local,test,notebook]'
	$(VENV)/bin/jupyter-lab notebooks/explore.ipynb $(if $(filter 0,$(shell id -u)),--allow-root)

upload: setup ## register compiled/PIPELINE.yaml as a pipeline version on KFP_HOST (GPU=1: the -gpu variant)
	@$(PY) -m pipelines upload $(PIPELINE) $(if $(GPU),--gpu) $(SAID_IF_INTERRUPTED)

schedule: setup ## recurring run of PIPELINE on KFP_HOST: CRON="0 0 6 * * *" [NAME=…] [PARAMS=…] [REPLACE=1] [GPU=1] [CATCHUP=1] [START=… END=…] [MAX_CONCURRENCY=N]
	@$(PY) -m pipelines schedule create $(PIPELINE) $(PARAMS) --cron "$(CRON)" $(if $(NAME),--name "$(NAME)") $(if $(REPLACE),--replace) $(if $(GPU),--gpu) \
		$(if $(CATCHUP),--catchup) $(if $(START),--start "$(START)") $(if $(END),--end "$(END)") $(if $(MAX_CONCURRENCY),--max-concurrency $(MAX_CONCURRENCY)) $(SAID_IF_INTERRUPTED)

schedule-list: setup ## list the recurring runs on KFP_HOST
	@$(PY) -m pipelines schedule list $(SAID_IF_INTERRUPTED)

schedule-pause: setup ## pause the recurring run NAME on KFP_HOST
	@$(PY) -m pipelines schedule pause "$(NAME)" $(SAID_IF_INTERRUPTED)

schedule-resume: setup ## resume the recurring run NAME on KFP_HOST
	@$(PY) -m pipelines schedule resume "$(NAME)" $(SAID_IF_INTERRUPTED)

schedule-delete: setup ## delete the recurring run NAME on KFP_HOST
	@$(PY) -m pipelines schedule delete "$(NAME)" $(SAID_IF_INTERRUPTED)

# The test files run on up to 4 processes (pytest-xdist); a file's tests stay in one process, so its
# module fixtures (a pipeline run, a server) run once. The files are handed out in the order
# tests/conftest.py gives them (those with end-to-end runs first), not xdist's (most tests first).
test: setup ## run the whole test suite (unit, component, compiled YAML, local end-to-end)
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

container-test: setup ## the container suite: image built, published to a loopback registry, every pipeline run in containers
	PY=$(PY) bash tests/containers/suite.sh

bench: setup ## run the benchmarks (not part of make test); each writes its section of bench/results.md
	@status=0; began=$$(date +%s); for b in bench/bench_*.py; do echo "== $$b"; start=$$(date +%s); \
		$(PY) $$b || status=1; echo "== $$b: $$(( $$(date +%s) - start )) s"; done; \
		echo "make bench: $$(( $$(date +%s) - began )) s in all"; exit $$status

lint: setup ## static checks (ruff)
	$(VENV)/bin/ruff check components pipelines tests bench examples deploy notebooks

# The site is built from docs/ (mkdocs.yml) in strict mode: a broken link or a missing page fails.
docs: setup ## write the pipelines' parameter tables and graphs from compiled/, then build the docs site into build/site
	$(PY) -m pipelines.docs_tables --compiled-dir $(COMPILED)
	$(PY) -m pipelines.docs_graphs --compiled-dir $(COMPILED)
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

image: ## build IMAGE:<version> with the Docker engine DOCKER_HOST reaches (GPU=1: also IMAGE_GPU)
	$(PYTHON) images/build.py --tag $(IMAGE):$(VERSION)
	$(if $(GPU),$(PYTHON) images/build.py --gpu --tag $(IMAGE_GPU):$(VERSION))

publish: setup ## push the built image(s) to IMAGE (GPU=1: also IMAGE_GPU), then compile against them
	docker push $(IMAGE):$(VERSION)
	$(if $(GPU),docker push $(IMAGE_GPU):$(VERSION))
	$(PY) -m pipelines compile --output-dir $(COMPILED)

# The claim is rendered from deploy/model-store-pvc.yaml with the settings above,
# then a one-off Job makes the volume writable by the images' user (uid 1000).
MODEL_STORE_RENDER = sed -e 's/namespace: kubeflow/namespace: $(NAMESPACE)/' \
	-e 's/accessModes: \[.*\]/accessModes: ["$(MODEL_STORE_ACCESS_MODE)"]/' \
	-e 's/storage: 10Gi/storage: $(MODEL_STORE_SIZE)/' \
	$(if $(MODEL_STORE_STORAGE_CLASS),-e 's/^  \# storageClassName:.*/  storageClassName: $(MODEL_STORE_STORAGE_CLASS)/') \
	deploy/model-store-pvc.yaml

model-store-manifest: ## print the model store claim and its ownership Job (NAMESPACE, MODEL_STORE_STORAGE_CLASS, …)
	@$(MODEL_STORE_RENDER)

# The deploy step's least-privilege account (deploy/rbac.yaml) in NAMESPACE; PROFILE=1 also binds
# its Role to a Kubeflow profile's default-editor account (deploy/profile-namespace.yaml).
DEPLOYER_RENDER = sed -e 's/namespace: kubeflow$$/namespace: $(NAMESPACE)/' \
	-e 's/kubeflow-user-example-com/$(NAMESPACE)/' \
	deploy/rbac.yaml $(if $(PROFILE),deploy/profile-namespace.yaml)

deployer-manifest: ## print the deploy step's ServiceAccount, token and Role for NAMESPACE (PROFILE=1: + default-editor)
	@$(DEPLOYER_RENDER)

deployer: ## apply the deploy step's ServiceAccount, token and Role in NAMESPACE (PROFILE=1: + default-editor) (kubectl)
	$(DEPLOYER_RENDER) | kubectl apply -f -

# The TensorFlow TrainingRuntime for Kubeflow Trainer v2 (the mnist TrainJob path) in NAMESPACE.
TRAINER_RUNTIME_RENDER = sed -e 's/namespace: kubeflow$$/namespace: $(NAMESPACE)/' deploy/trainer-tensorflow-runtime.yaml

trainer-runtime-manifest: ## print the TensorFlow TrainingRuntime (Kubeflow Trainer v2) for NAMESPACE
	@$(TRAINER_RUNTIME_RENDER)

# The Katib Experiment the mnist search step creates on a cluster (sweep=random|bayesian), as YAML:
# SEARCH_STORAGE is its distributed_storage, SEARCH_ARGS the search (--sweep, --trials, --parallelism,
# --learning-rate-range LOW HIGH, --hidden-layers-range LOW HIGH, --seed).
SEARCH_STORAGE ?= gs://BUCKET/kfp-ml-pipelines/staging
SEARCH_ARGS ?=

search-manifest: setup ## print the Katib Experiment of an mnist search (SEARCH_ARGS="--sweep random --trials 8") for NAMESPACE
	@$(PY) -m pipelines.mnist.cluster_search manifest --namespace $(NAMESPACE) --image $(IMAGE) \
		--storage $(SEARCH_STORAGE) $(SEARCH_ARGS)

trainer-runtime: ## install the TensorFlow TrainingRuntime in NAMESPACE (needs Kubeflow Trainer v2) (kubectl)
	$(TRAINER_RUNTIME_RENDER) | kubectl apply --server-side -f -

model-store: ## create the model store claim in NAMESPACE and make it writable by the pipelines (kubectl)
	$(MODEL_STORE_RENDER) | kubectl apply -f -
	kubectl -n $(NAMESPACE) wait --for=condition=complete --timeout=300s job/model-store-ownership

serve: setup ## serve model_store/ with TF-Serving's gRPC (:8500) and REST (:8501) APIs; MODEL=… serves one model
	@$(PY) -m pipelines serve --model-base-path model_store $(if $(MODEL),--model-name $(MODEL)) $(ARGS) $(SAID_IF_INTERRUPTED)

predict: setup ## query the served MODEL (default sp500); ARGS="--rest", "--label canary", "--date 2018-10-11", "--index 3", "--host H --port P"
	@$(PY) -m pipelines predict --model $(or $(MODEL),sp500) $(ARGS) $(SAID_IF_INTERRUPTED)

dashboard: setup ## regenerate the serving dashboard and Prometheus rules in deploy/monitoring/ (docs/monitoring.md)
	$(PY) deploy/monitoring/generate.py

promote: setup ## make MODEL's canary (or version TO=N) stable for all traffic; CLUSTER=1 on the kubeconfig's cluster
	@$(PY) -m pipelines promote $(or $(MODEL),$(PIPELINE)) $(if $(TO),--version $(TO)) $(if $(CLUSTER),--cluster $(if $(NAMESPACE),--namespace $(NAMESPACE))) $(SAID_IF_INTERRUPTED)

rollback: setup ## drop MODEL's canary, or TO=N: serve version N as stable; CLUSTER=1 on the kubeconfig's cluster
	@$(PY) -m pipelines rollback $(or $(MODEL),$(PIPELINE)) $(if $(TO),--to $(TO)) $(if $(CLUSTER),--cluster $(if $(NAMESPACE),--namespace $(NAMESPACE))) $(SAID_IF_INTERRUPTED)

clean: ## remove local runs (the model store is kept: it holds deployed versions)
	rm -rf runs
