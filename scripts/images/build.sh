#!/usr/bin/env bash
# Builds the trainbox images for linux/amd64 and linux/arm64 and publishes them as multi-arch manifest lists
# to the loopback registry (scripts/images/engine.sh). Idempotent: an image whose inputs (Dockerfile, the
# files it copies, its parent) are unchanged is already in the registry under its content-hash tag, and is
# skipped without starting a build.
#   127.0.0.1:$PORT/trainbox/base:bookworm-<key>[-<arch>]     debootstrapped Debian + Python 3.11 (local base)
#   127.0.0.1:$PORT/trainbox/<image>:<version>-<hash>[-<arch>] server, appworld, operator
# What was published (references, platforms, sizes) is written to build/images.json.
#   TRAINBOX_IMAGES="server=amd64,arm64 appworld=amd64,arm64 webshop=amd64 operator=amd64,arm64" (the default)
#   picks the set.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${TRAINBOX_CACHE:-$HOME/.cache/trainbox}
PORT=${TRAINBOX_REGISTRY_PORT:-5055}
REG=127.0.0.1:$PORT
DOCKER=/usr/bin/docker  # Debian's docker.io CLI (20.10): DOCKER_BUILDKIT=1 builds through the daemon's BuildKit
export DOCKER_HOST=unix://$CACHE/docker/docker.sock DOCKER_CONFIG=$CACHE/docker/config DOCKER_BUILDKIT=1
BUILD_ARCH=$(dpkg --print-architecture)  # the build machine's own (for stages that must not run emulated)
SET=${TRAINBOX_IMAGES:-server=amd64,arm64 appworld=amd64,arm64 webshop=amd64 operator=amd64,arm64}
OUT=$ROOT/build/images.json
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
hash_of() { sha256sum | cut -c1-12; }

# files_hash PATH...: content hash of the build-context files under PATHs (what .dockerignore lets through).
files_hash() {
  find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' ! -path '*/.mypy_cache/*' \
    -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | hash_of
}

in_registry() {  # in_registry REPO TAG: whether the registry has that manifest (list)
  curl -fs --noproxy "*" -o /dev/null -I \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/$1/manifests/$2"
}

ca_bundle() {  # the build's trust store: Debian's bundle plus this machine's local CAs (build-only secret)
  local bundle=$CACHE/images/build-ca.pem
  mkdir -p "$(dirname "$bundle")"
  cat /etc/ssl/certs/ca-certificates.crt /usr/local/share/ca-certificates/*.crt 2>/dev/null >"$bundle.tmp" || true
  mv "$bundle.tmp" "$bundle"
  echo "$bundle"
}

list_archs() {  # list_archs REPO TAG: the architectures in the registry's manifest list REPO:TAG, sorted
  curl -fsS --noproxy '*' -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$REG/v2/$1/manifests/$2" 2>/dev/null | python3 -c 'import json, sys
print(" ".join(sorted(m["platform"]["architecture"] for m in json.load(sys.stdin).get("manifests", []))))' 2>/dev/null
}

# publish REPO TAG ARCH...: the manifest list REPO:TAG over the per-arch tags REPO:TAG-ARCH (already pushed).
publish() {
  local repo=$1 tag=$2; shift 2
  local refs=() arch
  for arch in "$@"; do refs+=("$REG/$repo:$tag-$arch"); done
  $DOCKER manifest create --insecure --amend "$REG/$repo:$tag" "${refs[@]}" >/dev/null
  $DOCKER manifest push --insecure --purge "$REG/$repo:$tag" >/dev/null
}

# alias REPO FROM TO: tag the manifest list REPO:FROM also as REPO:TO (in the registry; nothing is rebuilt).
# The version-only tag (e.g. trainbox/server:0.1.0) is what the chart's defaults name.
alias() {
  local repo=$1 from=$2 to=$3 type=application/vnd.docker.distribution.manifest.list.v2+json
  curl -fsS --noproxy '*' -H "Accept: $type" "http://$REG/v2/$repo/manifests/$from" -o "$CACHE/images/alias.json"
  curl -fsS --noproxy '*' -X PUT -H "Content-Type: $type" --data-binary "@$CACHE/images/alias.json" \
    "http://$REG/v2/$repo/manifests/$to" >/dev/null
}

# ensure REPO TAG DOCKERFILE CONTEXT ARCHS BUILD-ARG...: build and push each missing REPO:TAG-ARCH, then the list.
# BUILD-ARGs may end in @ARCH, replaced by -<arch> (the parent image of the same architecture).
ensure() {
  local repo=$1 tag=$2 dockerfile=$3 context=$4 archs_csv=$5; shift 5
  local archs arch want a args
  IFS=, read -r -a archs <<<"$archs_csv"
  want=$(printf '%s\n' "${archs[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
  if [ "$(list_archs "$repo" "$tag")" = "$want" ]; then step "$repo:$tag up to date ($want)"; return; fi
  for arch in "${archs[@]}"; do
    in_registry "$repo" "$tag-$arch" && continue
    args=(); for a in "$@"; do args+=("${a/%@ARCH/-$arch}"); done
    build_one "$repo" "$tag" "$arch" "$dockerfile" "$context" "${args[@]}"
    $DOCKER push -q "$REG/$repo:$tag-$arch" >/dev/null
  done
  publish "$repo" "$tag" "${archs[@]}"
  step "published $REG/$repo:$tag ($want)"
}

build_one() {  # build_one REPO TAG ARCH DOCKERFILE CONTEXT BUILD-ARG...
  local repo=$1 tag=$2 arch=$3 dockerfile=$4 context=$5; shift 5
  local args=() a start=$SECONDS
  for a in "$@"; do args+=(--build-arg "$a"); done
  step "building $repo:$tag for linux/$arch"
  $DOCKER build --progress=plain --network host --platform "linux/$arch" \
    --secret "id=pip-ca,src=$CA" -f "$dockerfile" -t "$REG/$repo:$tag-$arch" "${args[@]}" "$context" \
    >"$LOGS/${repo//\//-}-$arch.log" 2>&1 || { tail -n 40 "$LOGS/${repo//\//-}-$arch.log" >&2; \
      echo "images: building $repo for $arch failed; full log: $LOGS/${repo//\//-}-$arch.log" >&2; exit 1; }
  step "built $repo for $arch in $((SECONDS - start))s"
}

base() {  # the debootstrapped base for amd64 and arm64, published as 127.0.0.1:PORT/trainbox/base:<tag>
  local arch tag ctx
  tag=bookworm-$(bash scripts/images/base-rootfs.sh key)
  BASE_REF=$REG/trainbox/base:$tag
  [ "$(list_archs trainbox/base "$tag")" = "amd64 arm64" ] && { step "base image up to date ($BASE_REF)"; return; }
  mkdir -p "$CACHE/images/base"
  ctx=$(mktemp -d "$CACHE/images/base/ctx-XXXXXX")
  printf 'FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar /\nENV LANG=C.UTF-8\nCMD ["python3"]\n' >"$ctx/Dockerfile"
  for arch in amd64 arm64; do
    ln -f "$(bash scripts/images/base-rootfs.sh "$arch")" "$ctx/rootfs-$arch.tar"
  done
  ensure trainbox/base "$tag" "$ctx/Dockerfile" "$ctx" amd64,arm64
  rm -rf "$ctx"
}

declare -A ARCHS
for item in $SET; do ARCHS[${item%%=*}]=${item#*=}; done
mkdir -p "$CACHE/images" build
LOGS=$CACHE/images/logs; mkdir -p "$LOGS"
CA=$(ca_bundle)
bash scripts/images/go-tools.sh
bash scripts/images/engine.sh up  # the registry must run for the up-to-date checks
base  # both architectures, whatever the set: the test bed's pods use it on both node architectures

version() { sed -n 's/^version = "\(.*\)"/\1/p' "$1" | head -1; }
declare -A REF
image() {  # image NAME VERSION PARENT-ARG PARENT-REF INPUT...
  local name=$1 ver=$2 parent_arg=$3 parent=$4; shift 4
  local h
  h=$( { cat "images/$name/Dockerfile" .dockerignore; echo "$parent"; files_hash "$@"; } | hash_of)
  REF[$name]=$REG/trainbox/$name:$ver-$h
  ensure "trainbox/$name" "$ver-$h" "images/$name/Dockerfile" . "${ARCHS[$name]}" "$parent_arg=$parent@ARCH" \
    "BASE=$BASE_REF@ARCH" "BUILD_BASE=$BASE_REF-$BUILD_ARCH"
  alias "trainbox/$name" "$ver-$h" "$ver"
}

SERVER_VERSION=$(version server/pyproject.toml)
[ -n "${ARCHS[server]:-}" ] && image server "$SERVER_VERSION" BASE "$BASE_REF" \
  requirements/bfcl.txt requirements/bfcl-releases server sdk images/server/patch_ray.py
[ -n "${ARCHS[appworld]:-}" ] && image appworld "$SERVER_VERSION" SERVER "${REF[server]}" \
  requirements/appworld.txt server
# The WebShop engine's image: amd64 by default (its JVM and spaCy are untried under emulation; add arm64 to try).
[ -n "${ARCHS[webshop]:-}" ] && image webshop "$SERVER_VERSION" SERVER "${REF[server]}" \
  requirements/webshop.txt requirements/webshop-nodeps.txt server
# The operator calls sandboxes through the SDK; its Dockerfile installs on the build machine's architecture
# (BUILD_BASE) for the target's, so the arm64 image needs no pip under emulation.
[ -n "${ARCHS[operator]:-}" ] && image operator "$(version operator/pyproject.toml)" BASE "$BASE_REF" operator sdk

# The test bed's own images, from the binaries `make k8s-tools` built: the pod sandbox's pause (both
# architectures) and CoreDNS (amd64: it runs on the amd64 node). Skipped, with a note, before k8s-tools ran.
testbed_images() {
  # shellcheck source=../k8s/versions.env
  source scripts/k8s/versions.env
  local key="${K8S_VERSION#v}-etcd${ETCD_VERSION#v}-kwok${KWOK_VERSION#v}-helm${HELM_VERSION#v}-kuberay${KUBERAY_VERSION#v}"
  local kbin=$CACHE/k8s-$key/bin name tag ctx arch
  if [ ! -x "$kbin/pause-arm64" ] || [ ! -x "$kbin/coredns" ]; then
    step "no pause/coredns binaries in $kbin yet: run \`make k8s-tools\` for the real-node images"; return
  fi
  for name in pause coredns; do
    ctx=$(mktemp -d "$CACHE/images/ctx-XXXXXX")
    if [ $name = pause ]; then
      cp "$kbin/pause-amd64" "$kbin/pause-arm64" "$ctx/"
      printf 'FROM scratch\nARG TARGETARCH\nCOPY pause-${TARGETARCH} /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
      archs=(amd64 arm64)
    else
      cp "$kbin/coredns" "$ctx/"
      printf 'FROM scratch\nCOPY coredns /coredns\nENTRYPOINT ["/coredns"]\n' >"$ctx/Dockerfile"
      archs=(amd64)
    fi
    tag=$K8S_VERSION-$(cat "$ctx"/* | hash_of)
    REF[$name]=$REG/trainbox/$name:$tag
    ARCHS[$name]=$(IFS=,; echo "${archs[*]}")
    ensure "trainbox/$name" "$tag" "$ctx/Dockerfile" "$ctx" "${ARCHS[$name]}"
    rm -rf "$ctx"
  done
}
testbed_images

# The engine keeps every build's image and every layer it cached: over three sessions, 56 images (12.7 GB) and
# 7 GB of build cache on a 250 GB disk. Drop the superseded tags of the images this run built (the registry keeps
# them) and bound the build cache, most recently used kept (a code change still reuses its dependency layers).
prune_engine() {
  local name current ref
  for name in "${!REF[@]}" base; do
    current=${REF[$name]:-$BASE_REF}
    for ref in $($DOCKER image ls --format '{{.Repository}}:{{.Tag}}' "$REG/trainbox/$name"); do
      case $ref in "$current" | "$current"-*) ;; *) $DOCKER rmi "$ref" >/dev/null 2>&1 || true ;; esac
    done
  done
  $DOCKER builder prune -f --keep-storage "${TRAINBOX_BUILD_CACHE_KEEP:-6gb}" >/dev/null
}
prune_engine

# build/images.json: what the tests and the chart use.
{
  echo "{"
  echo "  \"registry\": \"$REG\","
  echo "  \"base\": {\"ref\": \"$BASE_REF\", \"archs\": \"amd64,arm64\"},"
  sep=""
  for name in "${!REF[@]}"; do
    sizes=""
    IFS=, read -r -a archs <<<"${ARCHS[$name]}"
    for arch in "${archs[@]}"; do  # uncompressed size, when the image is in the local engine
      size=$($DOCKER image inspect -f '{{.Size}}' "${REF[$name]}-$arch" 2>/dev/null) || continue
      sizes+="${sizes:+, }\"$arch\": $size"
    done
    printf '%s  "%s": {"ref": "%s", "archs": "%s", "bytes": {%s}}' "$sep" "$name" "${REF[$name]}" "${ARCHS[$name]}" "$sizes"
    sep=$',\n'
  done
  printf '\n}\n'
} >"$OUT.tmp"
# Images this run did not build (another TRAINBOX_IMAGES set) keep their entries from the previous file.
[ -f "$OUT" ] && python3 - "$OUT" "$OUT.tmp" <<'PY'
import json, sys
old, new = (json.load(open(path)) for path in sys.argv[1:3])
if old.get("registry") == new.get("registry"):
    new = {**{k: v for k, v in old.items() if k not in new}, **new}
    json.dump(new, open(sys.argv[2], "w"), indent=2)
PY
mv "$OUT.tmp" "$OUT"
step "images ready: $OUT"
