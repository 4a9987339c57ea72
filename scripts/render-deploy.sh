#!/usr/bin/env bash
# Renders crds/deploy/operator.yaml from the Helm chart (the single source): `kubectl apply -f crds/ -f crds/deploy/`
# then installs exactly what `helm install trainbox charts/trainbox -n trainbox-system` installs (without Helm).
# tests/test_deployables.py fails when the committed file differs from a fresh render: run this after a chart change.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=k8s/versions.env
source scripts/k8s/versions.env
KEY="${K8S_VERSION#v}-etcd${ETCD_VERSION#v}-kwok${KWOK_VERSION#v}-helm${HELM_VERSION#v}-kuberay${KUBERAY_VERSION#v}"
HELM=${HELM:-$HOME/.cache/trainbox/k8s-$KEY/bin/helm}
[ -x "$HELM" ] || { echo "helm not found at $HELM: run \`make k8s-tools\`" >&2; exit 1; }
out=crds/deploy/operator.yaml
{
  echo "# Rendered from charts/trainbox by scripts/render-deploy.sh: edit the chart, then re-run the script."
  echo "# The namespace comes from crds/deploy/namespace.yaml."
  HELM_CACHE_HOME=$(mktemp -d) HELM_CONFIG_HOME=$(mktemp -d) HELM_DATA_HOME=$(mktemp -d) \
    "$HELM" template trainbox charts/trainbox --namespace trainbox-system
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
