#!/usr/bin/env bash
# Makes (idempotently) a Debian bookworm root file system for one architecture with debootstrap, as a tar:
#   ~/.cache/trainbox/images/base/rootfs-<arch>-<key>.tar   (key: hash of the recipe below; bump RECIPE when
#                                                            the steps change)
# minbase + python3.11 + venv + ca-certificates; arm64 runs debootstrap's second stage under qemu-user
# (binfmt_misc, registered by scripts/system-packages.sh). Prints the tar's path on stdout.
#   usage: bash scripts/images/base-rootfs.sh amd64|arm64|key
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:?usage: base-rootfs.sh amd64|arm64|key}
CACHE=${TRAINBOX_CACHE:-$HOME/.cache/trainbox}
SUITE=bookworm
MIRROR=${TRAINBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
INCLUDE=python3,python3-venv,python-is-python3,ca-certificates,bubblewrap
RECIPE=1
KEY=$(echo "recipe=$RECIPE $SUITE minbase $INCLUDE" | sha256sum | cut -c1-12)
[ "$ARCH" = key ] && { echo "$KEY"; exit 0; }
OUT=$CACHE/images/base
TAR=$OUT/rootfs-$ARCH-$KEY.tar

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ -f "$TAR" ]; then log "base rootfs $ARCH up to date ($TAR)"; echo "$TAR"; exit 0; fi
mkdir -p "$OUT"
exec 9>"$OUT/.lock-$ARCH"; flock 9
if [ -f "$TAR" ]; then echo "$TAR"; exit 0; fi
work=$(mktemp -d "$OUT/build-$ARCH-XXXXXX")
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
start=$SECONDS
native=$(dpkg --print-architecture)
if [ "$ARCH" = "$native" ]; then
  log "debootstrap $SUITE $ARCH (minbase)"
  debootstrap --variant=minbase --arch="$ARCH" --include="$INCLUDE" "$SUITE" "$work/root" "$MIRROR" >&2
else
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "base-rootfs: qemu-aarch64 not registered: run scripts/system-packages.sh" >&2; exit 1; }
  log "debootstrap $SUITE $ARCH (minbase, first stage)"
  debootstrap --foreign --variant=minbase --arch="$ARCH" --include="$INCLUDE" "$SUITE" "$work/root" "$MIRROR" >&2
  log "debootstrap $SUITE $ARCH second stage under qemu-user (minutes)"
  chroot "$work/root" /debootstrap/debootstrap --second-stage >&2
fi
# Nothing a user's image should carry: package caches and lists, logs, the machine's identity.
root=$work/root
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* \
  "$root"/debootstrap "$root"/etc/machine-id "$root"/var/cache/debconf/*-old "$root"/root/.cache
: >"$root/etc/resolv.conf"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$root/etc/apt/sources.list"
tar --numeric-owner --xattrs -C "$root" -cf "$TAR.tmp" .
mv "$TAR.tmp" "$TAR"
log "base rootfs $ARCH built in $((SECONDS - start))s ($(du -h "$TAR" | cut -f1))"
echo "$TAR"
