"""The operator's exceptions (one root). Handlers turn them into conditions and Kopf retry decisions."""

from __future__ import annotations


class OperatorError(Exception):
    """Root of the operator's errors."""


class InvalidSpec(OperatorError):
    """The spec cannot be reconciled as written: reported as a condition, not retried until it changes."""
