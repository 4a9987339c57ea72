#!/usr/bin/env bash
# Builds (idempotently) the Go tools the image pipeline needs into ~/.cache/trainbox/images-tools/bin:
#   registry  the CNCF distribution registry (scripts/images/registry wrapper module)
# (No buildx: Debian's docker.io CLI with DOCKER_BUILDKIT=1 drives the daemon's BuildKit, which sets an image's
# platform right, and `docker manifest` makes the multi-arch lists.)
# A stamp per module (hash of go.mod, go.sum, flags and the Go version) makes a re-run a no-op.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${TRAINBOX_CACHE:-$HOME/.cache/trainbox}
BIN=$CACHE/images-tools/bin
export GOFLAGS=-mod=mod CGO_ENABLED=0
export GOMODCACHE=${TRAINBOX_GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${TRAINBOX_GOCACHE:-$CACHE/go/build}
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
command -v go >/dev/null || { echo "images: go is not on PATH (Go >= 1.26 builds the registry)" >&2; exit 1; }
mkdir -p "$BIN"
exec 9>"$BIN/.lock"; flock 9

build() {  # build NAME PACKAGE: one binary from wrapper module scripts/images/NAME
  local name=$1 pkg=$2 dir=$ROOT/scripts/images/$1 want
  want=$( { cat "$dir/go.mod" "$dir/go.sum"; echo "$pkg -s -w"; go env GOVERSION; } | sha256sum | cut -c1-16)
  if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/.stamp-$name" 2>/dev/null)" = "$want" ]; then
    step "$name: up to date"; return
  fi
  step "$name: building $pkg"
  local start=$SECONDS
  (cd "$dir" && go mod download && nice -n 10 go build -trimpath -ldflags '-s -w' -o "$BIN/$name.tmp" "$pkg")
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  echo "$want" >"$BIN/.stamp-$name"
  step "$name: built in $((SECONDS - start))s"
}
build registry github.com/distribution/distribution/v3/cmd/registry
