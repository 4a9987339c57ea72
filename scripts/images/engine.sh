#!/usr/bin/env bash
# The project's own Docker engine and image registry, both on loopback/unix sockets under ~/.cache/trainbox:
#   dockerd   Debian's docker.io with its own data root, exec root and socket; no bridge, no iptables rules
#             (builds use --network host; test containers use --network host or none)
#   registry  the CNCF distribution registry on 127.0.0.1:$TRAINBOX_REGISTRY_PORT (default 5055)
# Only processes this script started (recorded pid + matching command line) are ever stopped.
#   usage: bash scripts/images/engine.sh up|down|env
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${TRAINBOX_CACHE:-$HOME/.cache/trainbox}
D=$CACHE/docker
R=$CACHE/registry
PORT=${TRAINBOX_REGISTRY_PORT:-5055}
SOCK=$D/docker.sock
TOOLS=$CACHE/images-tools/bin
export DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$D/config
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# running PIDFILE PATTERN: the recorded pid if it is alive and its command line contains PATTERN.
running() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" && echo "$pid"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "engine: $what not ready after ${limit}s" >&2; return 1; }
    sleep 0.2
  done
}

up() {
  mkdir -p "$D/data" "$D/run" "$D/config" "$R/data"
  if ! running "$D/dockerd.pid" "--data-root $D/data" >/dev/null; then
    step "starting dockerd (data root $D/data, socket $SOCK)"
    echo '{}' >"$D/daemon.json"
    rm -f "$SOCK"
    # setsid: the engine outlives the calling make/pytest; `down` stops it.
    setsid dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/run" \
      --host "unix://$SOCK" --pidfile "$D/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
      --ip-masq=false --ip-forward=false --userland-proxy=false --log-level=warn --storage-driver=overlay2 \
      </dev/null >>"$D/dockerd.log" 2>&1 &
    wait_for "dockerd (log: $D/dockerd.log)" 60 /usr/bin/docker version
  fi
  if ! running "$R/registry.pid" "$R/config.yml" >/dev/null; then
    [ -x "$TOOLS/registry" ] || bash scripts/images/go-tools.sh
    step "starting the image registry on 127.0.0.1:$PORT (storage $R/data)"
    cat >"$R/config.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $R/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT, debug: {addr: ""}}
YAML
    OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none setsid "$TOOLS/registry" serve "$R/config.yml" \
      </dev/null >>"$R/registry.log" 2>&1 &
    echo $! >"$R/registry.pid"
    wait_for "registry on 127.0.0.1:$PORT (log: $R/registry.log)" 30 \
      curl -fsS --noproxy '*' "http://127.0.0.1:$PORT/v2/"
  fi
}

stop_pid() {  # stop_pid NAME PID
  kill -TERM "$2" 2>/dev/null || return 0
  for _ in $(seq 100); do [ -d "/proc/$2" ] || { step "stopped $1"; return 0; }; sleep 0.1; done
  kill -KILL "$2" 2>/dev/null || true
  step "killed $1"
}

down() {
  local pid
  if pid=$(running "$R/registry.pid" "$R/config.yml"); then stop_pid registry "$pid"; fi
  if pid=$(running "$D/dockerd.pid" "--data-root $D/data"); then
    # Containers first (dockerd would stop them too, with their own grace period).
    /usr/bin/docker ps -q | xargs -r /usr/bin/docker rm -f >/dev/null 2>&1 || true
    stop_pid dockerd "$pid"
  fi
  rm -f "$R/registry.pid"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  env) echo "export DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=$DOCKER_CONFIG TRAINBOX_REGISTRY=127.0.0.1:$PORT" ;;
  *) echo "usage: engine.sh up|down|env" >&2; exit 2 ;;
esac
