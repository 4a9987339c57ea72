#!/usr/bin/env bash
# Builds (idempotently) the Kubernetes test-bed binaries from Go modules into
#   ~/.cache/trainbox/k8s-<version key>/bin : kube-apiserver, kube-controller-manager, kube-scheduler,
#                                            etcd, kwok, helm, kuberay-operator
#   ~/.cache/trainbox/k8s-<version key>/crds: the KubeRay CRDs, taken from the module
#   ~/.cache/trainbox/k8s-<version key>/kwok-stages: kwok's stock node and pod stages, from the module
# Versions are pinned in scripts/k8s/versions.env and the wrapper modules scripts/k8s/{kube,kuberay}.
# A stamp per wrapper module (hash of its go.mod, go.sum and build flags) makes a re-run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${TRAINBOX_CACHE:-$HOME/.cache/trainbox}
# shellcheck source=k8s/versions.env
source scripts/k8s/versions.env
KEY="${K8S_VERSION#v}-etcd${ETCD_VERSION#v}-kwok${KWOK_VERSION#v}-helm${HELM_VERSION#v}-kuberay${KUBERAY_VERSION#v}"
OUT=$CACHE/k8s-$KEY
BIN=$OUT/bin
export GOFLAGS=-mod=mod
export GOMODCACHE=${TRAINBOX_GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${TRAINBOX_GOCACHE:-$CACHE/go/build}
export CGO_ENABLED=0

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'k8s-tools: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH; the test bed is built with Go >= 1.26"
mkdir -p "$BIN"
# One build at a time per version key (two `make test` runs may start together); a killed build's
# temp dirs are cleared once the lock is held.
exec 9>"$OUT/.lock"
flock 9
rm -rf "$OUT"/build-*

k8s_ldflags() {
  local v=${K8S_VERSION#v} pkg=k8s.io/component-base/version
  local major=${v%%.*} minor; minor=${v#*.}; minor=${minor%%.*}
  printf -- '-s -w -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=1970-01-01T00:00:00Z' \
    "$pkg" "$K8S_VERSION" "$pkg" "$major" "$pkg" "$minor" "$pkg" "$pkg"
  # helm is linked from the same module; -X on a package a binary lacks is ignored.
  printf -- ' -X helm.sh/helm/v3/internal/version.version=%s' "$HELM_VERSION"
}

# default_name PACKAGE: the file name go build gives the package's binary (a /vN suffix is dropped).
default_name() {
  local p=$1
  [[ $p =~ /v[0-9]+$ ]] && p=${p%/*}
  basename "$p"
}

# build_module NAME LDFLAGS OUTNAME=PACKAGE...: builds the packages of wrapper module NAME unless its stamp matches.
build_module() {
  local name=$1 ldflags=$2; shift 2
  local dir=$ROOT/scripts/k8s/$name stamp=$BIN/.stamp-$name want missing=0 spec
  want=$( { cat "$dir/go.mod" "$dir/go.sum"; echo "$ldflags $*"; go env GOVERSION; } | sha256sum | cut -c1-16)
  for spec in "$@"; do [ -x "$BIN/${spec%%=*}" ] || missing=1; done
  if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "$name: up to date ($BIN)"; return
  fi
  local tmp; tmp=$(mktemp -d "$OUT/build-XXXXXX")
  local pkgs=(); for spec in "$@"; do pkgs+=("${spec#*=}"); done
  step "$name: downloading modules"
  (cd "$dir" && go mod download)
  step "$name: building ${pkgs[*]} (nice -n 10; a cold build takes minutes)"
  local start=$SECONDS
  # One go build for all packages: shared packages compile once and the links overlap.
  (cd "$dir" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for spec in "$@"; do mv -f "$tmp/$(default_name "${spec#*=}")" "$BIN/${spec%%=*}"; done
  rmdir "$tmp"
  echo "$want" >"$stamp"
  step "$name: built in $((SECONDS - start))s"
}

# sync_files DIR FILE...: copy each FILE into DIR unless an identical copy is there (keeps mtimes stable).
sync_files() {
  local dir=$1 file; shift
  mkdir -p "$dir"
  for file in "$@"; do
    cmp -s "$file" "$dir/$(basename "$file")" || install -m 644 "$file" "$dir/"
  done
}

copy_kuberay_crds() {
  local src
  src=$(cd scripts/k8s/kuberay && go list -m -f '{{.Dir}}' github.com/ray-project/kuberay/ray-operator)
  [ -d "$src/config/crd/bases" ] || die "KubeRay CRDs not found under $src/config/crd/bases"
  sync_files "$OUT/crds" "$src"/config/crd/bases/ray.io_*.yaml
}

# kwok ships no default stages when run as a plain controller; take the stock ones from its module.
copy_kwok_stages() {
  local src
  src=$(cd scripts/k8s/kube && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  sync_files "$OUT/kwok-stages" "$src"/node/fast/node-initialize.yaml \
    "$src"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$src"/pod/fast/pod-ready.yaml "$src"/pod/fast/pod-complete.yaml "$src"/pod/fast/pod-delete.yaml
}

step "Kubernetes test bed $KEY -> $OUT"
build_module kube "$(k8s_ldflags)" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  etcd=go.etcd.io/etcd/server/v3 \
  kwok=sigs.k8s.io/kwok/cmd/kwok \
  helm=helm.sh/helm/v3/cmd/helm
build_module kuberay "-s -w" kuberay-operator=github.com/ray-project/kuberay/ray-operator
copy_kuberay_crds
copy_kwok_stages
step "k8s tools ready: $BIN"
