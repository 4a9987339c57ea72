# Sourced by the install scripts (after uv-env.sh): one way to make a venv idempotently.
#   make_venv NAME DIR INPUT... -- COMMAND...   runs COMMAND with VIRTUAL_ENV set when the hash of the INPUT
#   files differs from DIR/.trainbox-stamp, byte-compiles the venv, then writes the stamp.
#   uvpip ARGS...                               `uv pip install` into $VIRTUAL_ENV (inside a COMMAND).
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

make_venv() {  # name dir inputs... -- install-command
  local name=$1 dir=$2; shift 2
  local inputs=()
  while [ "$1" != "--" ]; do inputs+=("$1"); shift; done; shift
  local want; want=$(stamp_of "${inputs[@]}")
  if [ -f "$dir/.trainbox-stamp" ] && [ "$(cat "$dir/.trainbox-stamp")" = "$want" ]; then
    step "$name venv up to date ($dir)"; return
  fi
  step "creating $name venv in $dir"
  local began=$SECONDS
  [ -x "$dir/bin/python" ] || "$UV" venv -q -p "$PY" "$dir"
  VIRTUAL_ENV=$ROOT/$dir "$@"
  # With PYTHONDONTWRITEBYTECODE set (as on our machines) every worker would recompile what it imports.
  step "byte-compiling $name"
  "$dir/bin/python" -m compileall -q -j 0 "$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
  echo "$want" > "$dir/.trainbox-stamp"
  step "$name venv ready in $((SECONDS - began)) s"
}

uvpip() { "$UV" pip install --python "$VIRTUAL_ENV/bin/python" "$@"; }
