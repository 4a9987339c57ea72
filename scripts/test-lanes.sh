#!/usr/bin/env bash
# The whole suite as concurrent pytest processes, "lanes" (what `make test` and CI run):
#   cluster: tests/k8s and tests/test_images.py — mostly waiting on pods, image pulls and emulated arm64;
#   soak:    tests/test_soak.py — 20,000 cycles through one service of its own;
#   service: everything else — Ray, the service, the engines (streams here).
# Lanes share nothing but the machine: each starts its own Ray cluster or control plane on free loopback ports
# and has its own pytest temp dir; only the cluster lane starts the test bed's real nodes. The other lanes'
# output goes to build/test-results/<lane>-lane.log and is printed when the service lane is done.
# Each lane writes a JUnit XML with every test's duration: build/test-results/junit-<lane>.xml
# (`python3 scripts/slowest_tests.py` lists the slowest over all lanes).
# Exit status: 0 only when every lane passes (pytest's 5, "no tests", is a failure too).
#   TRAINBOX_TEST_LANES=serial runs the lanes one after the other instead (same tests, same files).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=build/test-results
declare -A PATHS=([cluster]="tests/k8s tests/test_images.py" [soak]="tests/test_soak.py")
BACKGROUND=(cluster soak)
mkdir -p "$OUT"
began=$SECONDS
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

lane() {  # lane NAME: run that lane's tests (service: all tests but the other lanes')
  local name=$1 args=()
  if [ "$name" = service ]; then
    for other in "${BACKGROUND[@]}"; do for path in ${PATHS[$other]}; do args+=("--ignore=$path"); done; done
    args+=(tests)
  else
    read -r -a args <<<"${PATHS[$name]}"
  fi
  "$PY" -m pytest -q -rfE --durations=10 -p no:cacheprovider --junit-xml="$OUT/junit-$name.xml" "${args[@]}"
}

declare -A STATUS PID
if [ "${TRAINBOX_TEST_LANES:-}" = serial ]; then
  for name in service "${BACKGROUND[@]}"; do say "lane $name"; lane "$name"; STATUS[$name]=$?; done
else
  for name in "${BACKGROUND[@]}"; do
    say "lane $name (${PATHS[$name]}) in the background; its output: $OUT/$name-lane.log"
    lane "$name" >"$OUT/$name-lane.log" 2>&1 &
    PID[$name]=$!
  done
  trap 'for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait' INT TERM
  say "lane service (the rest)"
  lane service; STATUS[service]=$?
  say "lane service: exit ${STATUS[service]} after $((SECONDS - began)) s"
  for name in "${BACKGROUND[@]}"; do
    wait "${PID[$name]}"; STATUS[$name]=$?
    say "lane $name (${PATHS[$name]}): exit ${STATUS[$name]}, done by $((SECONDS - began)) s; its output:"
    cat "$OUT/$name-lane.log"
  done
  trap - INT TERM
fi
summary=""; failed=0
for name in service "${BACKGROUND[@]}"; do
  summary+=" $name=${STATUS[$name]}"
  [ "${STATUS[$name]}" = 0 ] || failed=1
done
say "all lanes done in $((SECONDS - began)) s; exit codes:$summary"
exit "$failed"
