#!/usr/bin/env bash
# Creates (idempotently) .venvs/openenv: OpenEnv's client package (openenv-core, from PyPI, with its own
# dependencies) for tests/test_openenv.py, which drives trainbox's /openenv/<family> endpoint with it.
# A stamp keyed by the hash of the inputs makes a re-run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=uv-env.sh
source scripts/uv-env.sh
# shellcheck source=venv-lib.sh
source scripts/venv-lib.sh

install_openenv() {
  uvpip -r requirements/openenv.txt
  step "checking the client imports"
  "$VIRTUAL_ENV/bin/python" -c 'from openenv.core import GenericEnvClient; from openenv.core.env_server.types import WSErrorCode'
}

make_venv openenv .venvs/openenv \
  requirements/openenv.txt scripts/install-openenv.sh scripts/venv-lib.sh -- install_openenv
