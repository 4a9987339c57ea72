# Sourced by the install scripts (after uv-env.sh): one way to make a venv idempotently.
#   make_venv NAME DIR INPUT... -- COMMAND...   runs COMMAND with VIRTUAL_ENV set when the hash of the INPUT
#   files differs from DIR/.trainbox-stamp, byte-compiles the venv, then writes the stamp.
#   uvpip ARGS...                               `uv pip install` into $VIRTUAL_ENV (inside a COMMAND).
# A venv made once is kept under $CACHE/venvs/<dir>-<stamp> as hard links (no second copy of its files). A fresh
# clone with the same inputs (CI clones the repository every run) copies it from there in seconds instead of
# installing and byte-compiling it again, then rewrites the text files that name the clone it was made in
# (script shebangs, editable installs' .pth files): each rewritten file is a new file, the kept one is untouched.
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
VENV_CACHE=$CACHE/venvs

make_venv() {  # name dir inputs... -- install-command
  local name=$1 dir=$2; shift 2
  local inputs=()
  while [ "$1" != "--" ]; do inputs+=("$1"); shift; done; shift
  local want; want=$(stamp_of "${inputs[@]}")
  if [ -f "$dir/.trainbox-stamp" ] && [ "$(cat "$dir/.trainbox-stamp")" = "$want" ]; then
    step "$name venv up to date ($dir)"; return
  fi
  local began=$SECONDS kept
  kept=$VENV_CACHE/$(printf '%s' "$dir" | tr -c 'A-Za-z0-9_-' '_')-$want
  if [ -f "$kept/.trainbox-stamp" ] && [ -f "$kept/.trainbox-root" ]; then
    step "copying $name venv from $kept"
    rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
    cp -al "$kept" "$dir"
    relocate_venv "$dir" "$(cat "$kept/.trainbox-root")" "$ROOT"
    step "$name venv ready in $((SECONDS - began)) s (copied)"
    return
  fi
  step "creating $name venv in $dir"
  [ -x "$dir/bin/python" ] || "$UV" venv -q -p "$PY" "$dir"
  VIRTUAL_ENV=$ROOT/$dir "$@"
  # With PYTHONDONTWRITEBYTECODE set (as on our machines) every worker would recompile what it imports.
  step "byte-compiling $name"
  "$dir/bin/python" -m compileall -q -j 0 "$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
  rm -f "$dir/.trainbox-stamp"; echo "$want" > "$dir/.trainbox-stamp"
  keep_venv "$dir" "$kept"
  step "$name venv ready in $((SECONDS - began)) s"
}

keep_venv() {  # dir kept: hard-link the venv into the cache (replacing older versions of the same dir)
  local dir=$1 kept=$2
  mkdir -p "$VENV_CACHE"
  rm -rf "$kept.tmp"
  cp -al "$dir" "$kept.tmp" && printf '%s\n' "$ROOT" > "$kept.tmp/.trainbox-root.new" \
    && mv "$kept.tmp/.trainbox-root.new" "$kept.tmp/.trainbox-root" || { rm -rf "$kept.tmp"; return 0; }
  local old
  for old in "${kept%-*}"-*; do [ "$old" = "$kept.tmp" ] || rm -rf "$old"; done
  mv "$kept.tmp" "$kept"
}

relocate_venv() {  # dir old-root new-root: rewrite text files naming the old clone (new files, not in place)
  local dir=$1 old=$2 new=$3 file
  rm -f "$dir/.trainbox-root"
  [ "$old" = "$new" ] && return
  grep -rlIF --exclude='*.pyc' -- "$old" "$dir" | while IFS= read -r file; do
    sed "s|$old|$new|g" "$file" > "$file.relocated" && chmod --reference="$file" "$file.relocated" \
      && mv "$file.relocated" "$file"
  done
}

uvpip() { "$UV" pip install --python "$VIRTUAL_ENV/bin/python" "$@"; }
