#!/usr/bin/env bash
# Creates (idempotently) .venvs/reference: the reference service (agentscope-runtime's training_box with
# its BFCL environment) and its client, from PyPI only, for bench/compare_reference.py and
# tests/test_reference_client.py. A stamp keyed by the hash of the inputs makes a re-run a no-op.
# Nothing of the reference is copied into this repository; the bench copies training_box out of
# site-packages into a temporary folder at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=uv-env.sh
source scripts/uv-env.sh
# shellcheck source=venv-lib.sh
source scripts/venv-lib.sh

install_reference() {
  uvpip -r requirements/reference.txt
  uvpip --no-deps -r requirements/reference-nodeps.txt
  step "checking the reference imports"
  "$VIRTUAL_ENV/bin/python" - <<'PY'
import importlib.util, pathlib
import agentscope_runtime, bfcl_eval, ray, fastapi  # noqa: F401
from agentscope_runtime.sandbox.client.training_client import TrainingSandboxClient  # noqa: F401
box = pathlib.Path(agentscope_runtime.__file__).parent / "sandbox/box/training_box"
client = pathlib.Path(agentscope_runtime.__file__).parent / "sandbox/client/training_client.py"
assert (box / "env_service.py").is_file() and client.is_file(), "agentscope-runtime layout changed"
PY
}

make_venv reference .venvs/reference \
  requirements/reference.txt requirements/reference-nodeps.txt scripts/install-reference.sh scripts/venv-lib.sh \
  -- install_reference
