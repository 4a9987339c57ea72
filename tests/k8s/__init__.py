"""Tests against a real local Kubernetes control plane (see cluster.py); marked `k8s`."""
