#!/usr/bin/env bash
# Every benchmark, results in bench/results/ (`make bench` runs this after `make install`).
#   bfcl_instances.json        per-instance BFCL cost in one worker process (no service)
#   bfcl_releases.json         per BFCL release served: create p50 from the warm pool, step p50, memory per instance
#   appworld.json              AppWorld create from the warm pool vs cold, world process memory
#   webshop.json               WebShop (generated catalogue): create from the warm pool, step, memory per instance
#   service*.json, service.md  trainbox vs the reference's own service, side by side
#   operator_scale.json        1,000 TrainingInstances to Ready and released by TTL (real control plane)
#   real_pods.json             helm install to a Ready sandbox on real pods; TrainingInstance to Ready
#   fork.json                  fork latency vs replaying the prefix in a new instance (BFCL; AppWorld on the builder's data)
#   episode_cpu.json           CPU per BFCL episode through the service, by process (front, host, workers, Ray, client)
# Pass --quick to scale the service benchmark down (a check of the machinery, not numbers to quote).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
bash scripts/install-reference.sh
step "BFCL per-instance cost"
PYTHONPATH=server .venvs/bfcl-2026.3.23/bin/python bench/bfcl_instances.py
step "BFCL per release: create from the warm pool, step, memory per live instance"
.venv/bin/python -m bench.bfcl_releases
step "AppWorld warm-pool vs cold create"
.venv/bin/python -m bench.appworld_bench
step "WebShop: create from the warm pool, step, memory per live instance"
.venv/bin/python -m bench.webshop
step "service: trainbox vs the reference"
.venv/bin/python -m bench.compare_reference "$@"
step "CPU per BFCL episode through the service, by process"
.venv/bin/python -m bench.episode_cpu
step "fork vs replaying the prefix"
AW=$(mktemp -d)
PYTHONPATH=server .venvs/appworld/bin/python -m trainbox_server.envs.appworld.dataset --root "$AW" >/dev/null
.venv/bin/python -m bench.fork_bench --appworld-root "$AW"
rm -rf "$AW"
step "operator: 1,000 TrainingInstances"
bash scripts/k8s-tools.sh
.venv/bin/python -m bench.operator_scale
step "real pods: helm install to Ready, TrainingInstance to Ready"
make -s images-for-tests >/dev/null
.venv/bin/python -m bench.real_pods
