#!/bin/sh
# Start one of Ray's node agents after writing the port files the raylet waits for.
#
#   ray_early_ports.sh <python> -u <agent script> <the agent's own arguments...>
#
# The server image's Ray runs its dashboard and runtime-env agents through this (images/server/patch_ray.py).
# Why: Ray 2.60's raylet blocks until those agents have written their ports to
# <session dir>/<port name>_<node id>, and aborts the node after a hard-coded 15 s (WaitForPersistedPort; neither
# RAY_agent_register_timeout_ms nor RAY_raylet_start_wait_time_s covers it). An agent writes its files only after
# importing grpc, aiohttp and Ray's dashboard modules: ~12 s natively on this machine's loaded cores, and more
# for an arm64 worker under qemu-user, whose raylet then aborts on every start. A shell script, not Python:
# under emulation and load even an empty Python start can take seconds.
#
# The values written are the ones the agent itself writes later, known in advance:
#  - the minimal dashboard agent (--minimal: the `ray` package without [default], as our images install) serves
#    neither metrics nor HTTP and writes -1 for its three ports;
#  - the runtime-env agent writes the port it is given (--runtime-env-agent-port=N, fixed in our Ray pods); the
#    raylet's client to it retries until the agent listens.
# A port not known in advance (a dynamic port, a full dashboard agent) is left to the agent. A file is written
# atomically and never over an existing one; then the agent is exec'd in this process (the raylet monitors the
# pid it started).
set -u
session='' node='' minimal='' runtime_env_port='' script=''
for arg in "$@"; do
  case $arg in
    --session-dir=*) session=${arg#*=} ;;
    --node-id=*) node=${arg#*=} ;;
    --minimal) minimal=1 ;;
    --runtime-env-agent-port=*) runtime_env_port=${arg#*=} ;;
    */dashboard/agent.py | */runtime_env/agent/main.py) [ -n "$script" ] || script=$arg ;;
  esac
done

write_port() {  # write_port NAME VALUE
  target="$session/$1_$node"
  [ -e "$target" ] && return 0
  printf '%s' "$2" >"$target.early-$$" && mv -f "$target.early-$$" "$target"
}

if [ -n "$session" ] && [ -n "$node" ] && [ -d "$session" ]; then
  case $script in
    */dashboard/agent.py)
      if [ -n "$minimal" ]; then
        for name in metrics_agent_port metrics_export_port dashboard_agent_listen_port; do write_port "$name" -1; done
      fi ;;
    */runtime_env/agent/main.py)
      case $runtime_env_port in
        '' | 0 | *[!0-9]*) ;;
        *) write_port runtime_env_agent_port "$runtime_env_port" ;;
      esac ;;
  esac
fi
exec "$@"
