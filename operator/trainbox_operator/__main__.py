"""``python -m trainbox_operator``: run the operator in cluster (ServiceAccount) or out of cluster (kubeconfig)."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys


def _version() -> str:
    try:
        return importlib.metadata.version("trainbox-operator")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree without an install
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainbox-operator", description=__doc__)
    parser.add_argument("--kubeconfig", help="out of cluster: this kubeconfig (default: in-cluster, or $KUBECONFIG)")
    parser.add_argument("-n", "--namespace", action="append", help="watch this namespace (repeatable)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--liveness", default=None, help="serve a liveness probe, e.g. http://0.0.0.0:8081/healthz")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"trainbox-operator {_version()}")
    args = parser.parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if not args.namespace and not args.all_namespaces:
        parser.error("say which namespaces to watch: -n NAME (repeatable) or -A")
    # Per-object INFO lines ("Timer ... succeeded") for thousands of instances cost more than they tell.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    # Imported only now: the Kubernetes client reads $KUBECONFIG when it is first imported.
    import kopf

    from trainbox_operator import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, quiet=not args.verbose)
    kopf.run(
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or [],
        liveness_endpoint=args.liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
