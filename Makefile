# The two commands of the README: `make up` (set up, then run the pipeline) and `make test`.
# Each installs whatever is missing first, so both work on a fresh clone of a fresh machine.
# `make validate` checks the deployment descriptors (compose file, SAM template, Dockerfiles,
# Kubernetes manifests, with a checkov security scan, the ECS task definitions) without Docker,
# a cluster or AWS. `make docs` checks the docs' figures and builds them as a site (`make lint`
# runs it).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# aws-sam-cli pins its own boto3 and pydantic: it gets a virtualenv of its own.
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/sam
# checkov pins its own dependencies too. Offline but for PyPI: no version check, no download of
# Bridgecrew's policies or guidelines. Any failed check fails the build; a check that does not
# apply is skipped where it is raised, with the reason (template.yaml, the Dockerfiles, deploy/k8s).
CHECKOV_VENV := .venv-checkov
CHECKOV := CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download
# The Kubernetes manifests (deploy/k8s, docs/kubernetes.md): the core kinds against the API's own
# schemas for this version, unknown fields rejected; KEDA's kinds are checked against KEDA's
# schemas by tests/descriptors/test_k8s.py, which also checks this list names every core file.
K8S_VERSION := 1.33.0
K8S_CORE := deploy/k8s/namespace.yaml deploy/k8s/configmap.yaml deploy/k8s/deployment-ingest.yaml \
  deploy/k8s/service-ingest.yaml deploy/k8s/deployment-poller.yaml deploy/k8s/networkpolicy.yaml \
  deploy/k8s/redis.yaml deploy/k8s/mlflow.yaml deploy/k8s/job-train.yaml deploy/k8s/ingress.yaml
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends

.PHONY: setup system browser venv up test check lint docs format validate lock clean compose-cli build-IngestFunction build-ProduceFunction

setup: system venv

# redis-server is the one system package the pipeline needs; install it where we can, else say
# exactly how. wrk (for `streamfn bench` only) comes along where apt-get runs as root.
system:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server and wrk (apt-get)"; \
	    apt-get update -qq && $(APT_INSTALL) redis-server wrk >/dev/null; \
	  else \
	    echo "redis-server is missing. Install it, then run make again:"; \
	    echo "  Debian/Ubuntu: sudo apt-get install -y redis-server    macOS: brew install redis"; \
	    exit 1; \
	  fi; }
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && $(APT_INSTALL) wrk >/dev/null; \
	  else \
	    echo "note: wrk is missing; streamfn bench needs it (apt-get install -y wrk)"; \
	  fi; }

# The console's page test drives a real browser: Debian's chromium (the tests need it, `up` not).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get), for the console's browser test"; \
	    apt-get update -qq && $(APT_INSTALL) chromium >/dev/null; \
	  else \
	    echo "chromium is missing; the console's browser test needs it:"; \
	    echo "  Debian/Ubuntu: sudo apt-get install -y chromium"; \
	    exit 1; \
	  fi; }

venv: $(STAMP)

# constraints.txt pins every package to the versions the tests ran with; the images use it too.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[cli,dev]"
	@touch $(STAMP)

up: setup
	$(BIN)/streamfn up

# Two workers (pytest-xdist): the tests that share the session's MLflow server run on one, those
# that bind `streamfn up`'s fixed ports on one (tests/conftest.py, tests/local/test_up_command.py).
PYTEST_WORKERS ?= 2

test: setup browser
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

# The quick tier, for an answer in about two minutes: lint, and every test that starts no stack of
# processes (no fault, no `streamfn up`, no server trained into; `slow` and `faults` marks).
check: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow and not faults"

# bandit: nothing above Low; a finding answered in place carries `# nosec <id>` and its reason.
# The supply-chain checks (vendored files and base images pinned) are offline and quick.
lint: setup docs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit -r streamfn functions benchmarks --severity-level medium --quiet
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/descriptors/test_supply_chain.py

# The docs: every performance figure they quote is in BENCHMARKS.md or benchmarks/ceilings.md
# (streamfn/docs/figures.py), and the site builds into site/ without a warning (mkdocs.yml is
# strict: a broken link or anchor, or a page missing from the nav, fails). Material prints a
# banner about MkDocs 2 on every build; the dev extra already keeps MkDocs below 2.
docs: setup
	$(BIN)/python -m streamfn.docs.figures
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Rewrite constraints.txt from the current virtualenv (after changing a dependency).
lock:
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli>=1.120,<2"

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov>=3.2,<4"

# docker-compose v1 (Debian's, Python) can read and resolve a compose file without an engine.
compose-cli:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing docker-compose (apt-get, no engine)"; \
	    apt-get update -qq && $(APT_INSTALL) docker-compose >/dev/null; \
	  else \
	    echo "docker-compose is missing: sudo apt-get install -y --no-install-recommends docker-compose"; \
	    exit 1; \
	  fi; }

validate: setup compose-cli $(SAM_VENV)/bin/sam $(CHECKOV_VENV)/bin/checkov
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	docker-compose --file docker-compose.yml config --quiet
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint
	$(CHECKOV) --framework cloudformation dockerfile \
	  -f template.yaml -f Dockerfile -f functions/infer/Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet --kubernetes-version $(K8S_VERSION) $(K8S_CORE)
	$(CHECKOV) --framework kubernetes -d deploy/k8s
	$(SAM) build --build-dir .aws-sam/build-ingest IngestFunction
	$(SAM) build --build-dir .aws-sam/build-produce ProduceFunction
	$(BIN)/python -m tests.descriptors.zip_smoke .aws-sam/build-ingest/IngestFunction .aws-sam/build-produce/ProduceFunction
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/descriptors/test_ecs.py

# SAM's makefile builds of the zip functions (`sam build` runs these; see template.yaml).
# Only the package, its core dependencies (for Lambda's Linux, Python 3.11) and the handler.
LAMBDA_PIP := --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 --only-binary=:all:

define zip_function
	rm -rf "$(ARTIFACTS_DIR)/.wheel" && mkdir -p "$(ARTIFACTS_DIR)/functions"
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir "$(ARTIFACTS_DIR)/.wheel" .
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)" $(LAMBDA_PIP) -c constraints.txt "$(ARTIFACTS_DIR)"/.wheel/*.whl
	rm -rf "$(ARTIFACTS_DIR)/.wheel" "$(ARTIFACTS_DIR)/bin"
	cp -r functions/$(1) "$(ARTIFACTS_DIR)/functions/$(1)"
endef

build-IngestFunction:
	$(call zip_function,ingest)

build-ProduceFunction:
	$(call zip_function,produce)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .streamfn .pytest_cache .ruff_cache .aws-sam site
