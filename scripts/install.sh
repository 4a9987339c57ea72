#!/usr/bin/env bash
# Creates (idempotently) every virtual environment the project needs, printing progress.
#   .venv            the service, SDK, operator and dev tools (pytest, ruff, mypy)
#   .venvs/bfcl-<release>  one per BFCL release served (requirements/bfcl-releases/<release>.txt): bfcl-eval
#                    without its ML dependencies, only what its environments and checker import
#   .venvs/appworld  the AppWorld engine (its pins clash with ours, so it lives alone)
#   .venvs/webshop   the WebShop engine: Anserini (Lucene) on a JDK from PyPI, thefuzz and spaCy
# A stamp file per venv, keyed by the hash of its inputs, makes a re-run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=uv-env.sh
source scripts/uv-env.sh
only=${1:-all}

# shellcheck source=venv-lib.sh
source scripts/venv-lib.sh

install_dev() {
  uvpip -e server -e sdk -e operator -r requirements/dev.txt
}
install_bfcl() {  # release-requirements-file
  uvpip -r requirements/bfcl.txt
  uvpip --no-deps -r "$1"
}
install_webshop() {
  uvpip -r requirements/webshop.txt
  uvpip --no-deps -r requirements/webshop-nodeps.txt
}
install_appworld() {
  bash scripts/install-appworld.sh "$UV" "$VIRTUAL_ENV"
}

# Model code (AppWorld) runs in a bubblewrap sandbox; prlimit and setpriv come with util-linux.
need_sandbox_tools() {
  command -v bwrap >/dev/null && command -v prlimit >/dev/null && command -v setpriv >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing the sandbox tools (Debian: bubblewrap, util-linux)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap util-linux >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap util-linux >/dev/null; }
  else
    echo "  bubblewrap is missing: install it (Debian: apt-get install bubblewrap) to serve AppWorld" >&2
  fi
}

want() { [ "$only" = all ] || [ "$only" = "$1" ]; }
want appworld && need_sandbox_tools
want dev && make_venv dev .venv scripts/install.sh scripts/uv-env.sh server/pyproject.toml sdk/pyproject.toml operator/pyproject.toml \
  requirements/dev.txt -- install_dev
if want bfcl; then
  for release_file in requirements/bfcl-releases/*.txt; do
    release=$(basename "$release_file" .txt)
    make_venv "bfcl $release" ".venvs/bfcl-$release" scripts/install.sh requirements/bfcl.txt "$release_file" \
      -- install_bfcl "$release_file"
  done
fi
want appworld && make_venv appworld .venvs/appworld requirements/appworld.txt scripts/install-appworld.sh -- install_appworld
want webshop && make_venv webshop .venvs/webshop scripts/install.sh requirements/webshop.txt \
  requirements/webshop-nodeps.txt -- install_webshop
exit 0
