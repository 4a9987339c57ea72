#!/usr/bin/env bash
# Creates (idempotently) .venvs/openenv: OpenEnv's client package (openenv-core, from PyPI, with its own
# dependencies) for tests/test_openenv.py, which drives trainbox's /openenv/<family> endpoint with it.
# A stamp keyed by the hash of the inputs makes a re-run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=uv-env.sh
source scripts/uv-env.sh
DIR=.venvs/openenv
INPUTS=(requirements/openenv.txt scripts/install-openenv.sh)

want=$(cat "${INPUTS[@]}" | sha256sum | cut -c1-16)
if [ -f "$DIR/.trainbox-stamp" ] && [ "$(cat "$DIR/.trainbox-stamp")" = "$want" ]; then
  step "openenv venv up to date ($DIR)"
  exit 0
fi
step "creating openenv venv in $DIR (openenv-core, the OpenEnv client)"
[ -x "$DIR/bin/python" ] || "$UV" venv -q -p "$PY" "$DIR"
"$UV" pip install --python "$ROOT/$DIR/bin/python" -r requirements/openenv.txt
step "checking the client imports"
"$DIR/bin/python" -c 'from openenv.core import GenericEnvClient; from openenv.core.env_server.types import WSErrorCode'
echo "$want" > "$DIR/.trainbox-stamp"
step "openenv venv ready"
