#!/usr/bin/env bash
# Every benchmark, results in bench/results/. Run from the repository root after `make install`.
#   bench/results/bfcl_instances.json   per-instance BFCL cost in one worker process (no service)
#   bench/results/service*.json, .md    trainbox vs the reference's own service, side by side
# Pass --quick to scale the service benchmark down (a check of the machinery, not numbers to quote).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-reference.sh
PYTHONPATH=server .venvs/bfcl/bin/python bench/bfcl_instances.py
.venv/bin/python -m bench.compare_reference "$@"
