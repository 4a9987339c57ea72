#!/usr/bin/env bash
# Installs (idempotently) the Debian packages the image builds and the real-node test bed need, and registers
# qemu-aarch64 with binfmt_misc (F flag: the interpreter is opened now, so it also works inside chroots and
# containers). Daemons are never started by the install: a policy-rc.d refuses every start; the test bed
# starts its own dockerd/containerd with their own roots and sockets.
#   bubblewrap                 the data plane's sandbox for model code
#   docker.io containerd runc  a Docker engine for image builds; containerd (CRI) per real node
#   debootstrap                the base images (nothing is pulled from a registry)
#   qemu-user-static           arm64 builds, the arm64 node and its pods under emulation
#   pigz                       containerd decompresses image layers with unpigz when it is on PATH: natively, also
#                              for the emulated arm64 node's containerd (its arm64 server image pull: 46 s → 33 s)
#   containernetworking-plugins  the pods' bridge network
#   gcc-aarch64-linux-gnu libc6-dev-arm64-cross  the arm64 pause binary
#   iptables                   kube-proxy and the test bed's no-way-out filter rule
#   chromium                   the trajectory viewer's test (headless, loopback only)
#   openjdk-17-jdk-headless maven  the Java client test (agentscope-runtime-java's TrainingSandboxClient)
set -euo pipefail
PACKAGES=(bubblewrap docker.io containerd runc debootstrap qemu-user-static pigz patch
  containernetworking-plugins gcc-aarch64-linux-gnu libc6-dev-arm64-cross iptables iproute2 zstd chromium
  openjdk-17-jdk-headless maven)

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "system-packages: need root to install ${missing[*]} (run as root, or install them)" >&2; exit 1; }
  step "installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e $policy ] && had_policy=1
  if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod 755 $policy; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || apt-get update
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ $had_policy = 1 ] || rm -f $policy
else
  step "system packages present"
fi

# binfmt_misc for arm64 under qemu-user.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f $conf ] || { echo "system-packages: $conf missing (qemu-user-static not installed?)" >&2; exit 1; }
  line=$(cat $conf)
  # Force the F flag (fix binary): the registration then works in any mount namespace.
  [[ ${line##*:} == *F* ]] || line="${line}F"
  printf '%s' "$line" >/proc/sys/fs/binfmt_misc/register
  step "registered qemu-aarch64 with binfmt_misc (flags ${line##*:})"
fi
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || { echo "system-packages: qemu-aarch64 is registered without the F flag; unregister it (echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64) and re-run" >&2; exit 1; }
