#!/usr/bin/env bash
# Builds (idempotently) the Kubernetes test-bed binaries from Go modules into
#   ~/.cache/trainbox/k8s-<version key>/bin : kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#                                            etcd, kwok, helm, kuberay-operator, kubelet, kube-proxy, coredns,
#                                            pause-amd64, pause-arm64 (static, from pause.c)
#   ~/.cache/trainbox/k8s-<version key>/bin/arm64: kubelet and containerd for the arm64 node
#                                                  (run under qemu-user)
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
bash scripts/system-packages.sh  # containerd, CNI plugins, qemu-user, the arm64 cross compiler
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
# NAME may carry an architecture (kube@arm64): the same module cross-built with GOARCH into $BIN/arm64/.
# NAME may also be MODULE:PART (kube:kubectl): more binaries of the same module under their own stamp, so adding
# one does not rebuild the others.
build_module() {
  local name=${1%@*} arch=${1#*@} ldflags=$2 part
  [ "$arch" = "$1" ] && arch=$(go env GOHOSTARCH)
  part=${name#*:}; name=${name%%:*}
  shift 2
  local dir=$ROOT/scripts/k8s/$name bin=$BIN stamp want missing=0 spec
  [ "$arch" = "$(go env GOHOSTARCH)" ] || bin=$BIN/$arch
  mkdir -p "$bin"
  stamp=$bin/.stamp-$part
  want=$( { cat "$dir/go.mod" "$dir/go.sum"; echo "$ldflags $* $arch"; go env GOVERSION; } | sha256sum | cut -c1-16)
  for spec in "$@"; do [ -x "$bin/${spec%%=*}" ] || missing=1; done
  if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "$name ($arch): up to date ($bin)"; return
  fi
  local tmp; tmp=$(mktemp -d "$OUT/build-XXXXXX")
  local pkgs=(); for spec in "$@"; do pkgs+=("${spec#*=}"); done
  step "$name: downloading modules"
  (cd "$dir" && go mod download)
  step "$name ($arch): building ${pkgs[*]} (nice -n 10; a cold build takes minutes)"
  local start=$SECONDS
  # One go build for all packages: shared packages compile once and the links overlap.
  (cd "$dir" && GOARCH=$arch nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for spec in "$@"; do mv -f "$tmp/$(default_name "${spec#*=}")" "$bin/${spec%%=*}"; done
  rmdir "$tmp"
  echo "$want" >"$stamp"
  step "$name ($arch): built in $((SECONDS - start))s"
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

# The pod sandbox's pause process, from the kubernetes module's own pause.c (static, one per architecture).
build_pause() {
  local src
  src=$(cd scripts/k8s/kube && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  [ -f "$src" ] || die "pause.c not found at $src"
  local arch cc
  for arch in amd64 arm64; do
    cc=gcc; [ "$arch" = amd64 ] || cc=aarch64-linux-gnu-gcc
    command -v "$cc" >/dev/null || die "$cc missing: run scripts/system-packages.sh"
    if [ ! -x "$BIN/pause-$arch" ] || [ "$src" -nt "$BIN/pause-$arch" ]; then
      "$cc" -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$BIN/pause-$arch.tmp" "$src"
      mv -f "$BIN/pause-$arch.tmp" "$BIN/pause-$arch"
      step "pause ($arch): built"
    fi
  done
}

# The arm64 node's containerd: containerd's CRI pulls images for the platform it was built for, so the arm64
# node runs an arm64 containerd under qemu-user. Built from containerd's Go module (scripts/k8s/containerd:
# the version and containerd's own replace directives) with one patch: under qemu-user seccomp cannot be set up
# at all (qemu refuses PR_SET_SECCOMP), and stock containerd then refuses every pod whose profile is not
# Unconfined — kubelet asks RuntimeDefault for the pod sandbox — so the patched one runs them without a profile.
# Static (CGO off); its shim and runc are the host's native ones (nodes.py).
build_arm64_containerd() {
  local dir=$ROOT/scripts/k8s/containerd bin=$BIN/arm64 want version work src
  want=$( { cat "$dir/go.mod" "$dir/go.sum" "$dir/emulated-node.patch"; go env GOVERSION; } | sha256sum | cut -c1-16)
  mkdir -p "$bin"
  if [ -x "$bin/containerd" ] && [ "$(cat "$bin/.stamp-containerd" 2>/dev/null)" = "$want" ]; then
    step "containerd (arm64): up to date"; return
  fi
  version=$(sed -n 's|^\tgithub.com/containerd/containerd \(v[^ ]*\)$|\1|p' "$dir/go.mod" | head -1)
  [ -n "$version" ] || die "no containerd version in $dir/go.mod"
  work=$(mktemp -d "$OUT/containerd-XXXXXX")
  cp "$dir/go.mod" "$dir/go.sum" "$work/"
  step "containerd (arm64): downloading $version"
  src=$(cd "$work" && go mod download -json "github.com/containerd/containerd@$version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$src" "$work/src" && chmod -R u+w "$work/src"
  (cd "$work/src" && patch -s -p1 <"$dir/emulated-node.patch")
  step "containerd (arm64): building $version (patched for emulated nodes; nice -n 10)"
  local start=$SECONDS
  (cd "$work" && GOARCH=arm64 nice -n 10 go build -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    -ldflags "-s -w" -o "$bin/containerd.tmp" github.com/containerd/containerd/cmd/containerd)
  mv -f "$bin/containerd.tmp" "$bin/containerd"
  rm -rf "$work"
  echo "$want" >"$bin/.stamp-containerd"
  step "containerd (arm64): built in $((SECONDS - start))s"
}

step "Kubernetes test bed $KEY -> $OUT"
build_module kube "$(k8s_ldflags)" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  etcd=go.etcd.io/etcd/server/v3 \
  kwok=sigs.k8s.io/kwok/cmd/kwok \
  helm=helm.sh/helm/v3/cmd/helm \
  kubelet=k8s.io/kubernetes/cmd/kubelet \
  kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
# kubectl: what a person uses on the test bed (`make cluster-up`), and what the tests apply manifests with.
build_module kube:kubectl "$(k8s_ldflags)" kubectl=k8s.io/kubernetes/cmd/kubectl
build_module kuberay "-s -w" kuberay-operator=github.com/ray-project/kuberay/ray-operator
build_module coredns "-s -w" coredns=github.com/coredns/coredns
# The arm64 node runs an arm64 kubelet under qemu-user: a kubelet reports its own build's architecture.
build_module kube@arm64 "$(k8s_ldflags)" kubelet=k8s.io/kubernetes/cmd/kubelet
build_pause
build_arm64_containerd
copy_kuberay_crds
copy_kwok_stages
step "k8s tools ready: $BIN"
