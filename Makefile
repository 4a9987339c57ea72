# trainbox — every target does its own set-up; `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: help install install-reference install-openenv install-java-client run test test-fast lint bench appworld-data webshop-data system-packages k8s-tools images \
	images-for-tests images-stop cluster-up cluster-down clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install:  ## create every virtual environment the project needs (idempotent)
	@bash scripts/install.sh

install-reference:  ## the reference (agentscope-runtime) in its own venv, for the compatibility test and benchmarks
	@bash scripts/install-reference.sh

install-openenv:  ## OpenEnv's client (openenv-core) in its own venv, for the OpenEnv protocol test
	@bash scripts/install-openenv.sh

install-java-client: system-packages  ## agentscope-runtime-java's client (Maven Central), for the Java client test
	@bash scripts/install-java-client.sh

run: install  ## set up and run the service on 127.0.0.1:8080 (BFCL; AppWorld where its data is present)
	@$(PY) -m trainbox_server serve --host 127.0.0.1 --port $${TRAINBOX_PORT:-8080} --banner

test: install install-reference install-openenv install-java-client k8s-tools images-for-tests  ## set up and run the whole test suite (what CI runs)
	@$(PY) scripts/test_lanes.py  # the cluster tests and the rest side by side (see the script); --serial: one by one

# The fast lane and the pure tests: no Ray, no service process, no Kubernetes tools, no images (under a minute).
# What only the slow tests import (the k8s test bed, schemathesis and hypothesis) is not even loaded.
FAST := -m "not slow" --ignore=tests/k8s --ignore=tests/test_openapi_conformance.py \
	-p no:schemathesis -p no:hypothesispytest --junit-xml=build/test-results/junit-fast.xml
test-fast: install  ## the fast lane (in-process hosts, real workers) and the pure tests: no Ray, no k8s tools
	@$(PY) -m pytest -q --durations=10 $(FAST) tests

lint: install  ## ruff + mypy
	@.venv/bin/ruff check server sdk operator tests bench scripts
	@.venv/bin/ruff format --check server sdk operator tests bench scripts
	@.venv/bin/mypy

bench: install  ## run every benchmark; results land in bench/results/ (README quotes them)
	@bash bench/run_all.sh

appworld-data: install  ## download AppWorld's task data (needs the internet)
	@.venvs/appworld/bin/appworld download data --root "$${APPWORLD_ROOT:-$$HOME/.cache/trainbox/appworld}"

webshop-data: install  ## download WebShop's data (1k setting; needs the internet) and build its search index
	@PYTHONPATH=server .venvs/webshop/bin/python -m trainbox_server.envs.webshop.download \
	  --root "$${WEBSHOP_ROOT:-$$HOME/.cache/trainbox/webshop}" --setting "$${WEBSHOP_SETTING:-1k}"

system-packages:  ## the Debian packages the images and real nodes need (docker.io, containerd, qemu-user, ...)
	@bash scripts/system-packages.sh

k8s-tools: system-packages  ## build the Kubernetes test-bed binaries into ~/.cache/trainbox (idempotent)
	@bash scripts/k8s-tools.sh

images: system-packages k8s-tools  ## build the images (amd64 + arm64) and publish them to the loopback registry
	@bash scripts/images/build.sh

# What the tests run: both architectures of what the chart's defaults name (the server, which the arm64 Ray
# workers run, and the operator; neither runs pip under emulation); AppWorld's and WebShop's for amd64 only.
IMAGES_FOR_TESTS := server=amd64,arm64 appworld=amd64 webshop=amd64 operator=amd64,arm64
images-for-tests: system-packages k8s-tools  ## the subset of `images` the tests need
	@TRAINBOX_IMAGES="$(IMAGES_FOR_TESTS)" bash scripts/images/build.sh

images-stop:  ## stop the project's Docker engine and image registry
	@bash scripts/images/engine.sh down

cluster-up: install k8s-tools images-for-tests  ## start the local control plane, real nodes included, for kubectl
	@$(PY) -m tests.k8s.cluster up

cluster-down:  ## stop it
	@$(PY) -m tests.k8s.cluster down

clean:  ## remove the venvs (the build cache in ~/.cache/trainbox stays)
	rm -rf .venv .venvs
