# Sourced by the install scripts: the pinned uv (bootstrapped into the cache on first use) and a progress
# printer. Sets ROOT, CACHE, PY, UV_VERSION, UV; defines step.
ROOT=$PWD
CACHE=${TRAINBOX_CACHE:-$HOME/.cache/trainbox}
PY=${TRAINBOX_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
UV_VERSION=0.13.9
UV=$CACHE/uv-$UV_VERSION/bin/uv

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x "$UV" ]; then
  step "bootstrapping uv $UV_VERSION into $CACHE"
  "$PY" -m venv "$CACHE/uv-$UV_VERSION"
  "$CACHE/uv-$UV_VERSION/bin/pip" install -q "uv==$UV_VERSION"
fi
