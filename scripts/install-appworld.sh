#!/usr/bin/env bash
# Installs the AppWorld engine into an existing venv and decrypts its app code (offline, ~1 s).
#   usage: bash scripts/install-appworld.sh <path-to-uv> <venv-dir>
# Idempotent: a re-run skips the decryption when the app code is already in place.
# Task data is separate (`make appworld-data`, needs the internet); tests build their own small dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${1:?usage: install-appworld.sh <path-to-uv> <venv-dir>}
VENV=${2:?usage: install-appworld.sh <path-to-uv> <venv-dir>}
PY=$VENV/bin/python

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "installing appworld into $VENV"
"$UV" pip install --python "$PY" -r requirements/appworld.txt

# `appworld install` decrypts the bundled app code into the package (the licence keeps it encrypted at rest
# in the wheel; it is never committed here). Its marker is the decrypted apps package.
if "$PY" -c 'import appworld.apps.admin' 2>/dev/null; then
  step "appworld app code already decrypted"
else
  step "decrypting appworld app code (appworld install)"
  "$VENV/bin/appworld" install
fi
# Byte-compile everything (the decrypted apps included): with PYTHONDONTWRITEBYTECODE set, as it is on
# some machines, every worker would otherwise recompile the engine at import (~8 s of CPU instead of ~5).
# compileall skips files whose .pyc is current, so a re-run is quick.
step "byte-compiling the appworld venv"
"$PY" -m compileall -q -j 0 "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null \
  || echo "  (some files could not be byte-compiled; they are compiled at import instead)"
step "appworld engine ready: $("$PY" -c 'import appworld; print(appworld.__version__)')"
