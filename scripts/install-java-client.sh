#!/usr/bin/env bash
# Resolves (idempotently) agentscope-runtime-java's TrainingSandboxClient and its dependencies from Maven
# Central into ~/.m2 and writes their classpath to .venvs/java-client/classpath.txt, for
# tests/test_java_client.py (which then compiles and runs tests/java/src offline). Needs a JDK and Maven
# (Debian: openjdk-17-jdk-headless, maven; `make system-packages`). A stamp keyed by the inputs' hash makes
# a re-run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/uv-env.sh  # for step()
DIR=.venvs/java-client
INPUTS=(tests/java/pom.xml scripts/install-java-client.sh)
command -v mvn >/dev/null && command -v javac >/dev/null \
  || { echo "install-java-client: needs mvn and javac (run make system-packages)" >&2; exit 1; }
want=$(cat "${INPUTS[@]}" | sha256sum | cut -c1-16)
if [ -f "$DIR/.trainbox-stamp" ] && [ "$(cat "$DIR/.trainbox-stamp")" = "$want" ]; then
  step "java client up to date ($DIR)"
  exit 0
fi
step "resolving agentscope-runtime-java's TrainingSandboxClient (Maven Central) into ~/.m2"
mkdir -p "$DIR"
mvn -B -q -f tests/java/pom.xml dependency:build-classpath -Dmdep.outputFile="$ROOT/$DIR/classpath.txt"
echo "$want" > "$DIR/.trainbox-stamp"
step "java client ready"
