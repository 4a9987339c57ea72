"""The operator's exceptions (one root). Handlers turn them into conditions and Kopf retry decisions."""

from __future__ import annotations


class OperatorError(Exception):
    """Root of the operator's errors; ``reason`` is the condition reason it maps to."""

    reason = "Error"


class InvalidSpec(OperatorError):
    """The spec cannot be reconciled as written: reported as a condition, not retried until it changes."""

    reason = "InvalidSpec"


class SandboxUnavailable(OperatorError):
    """The referenced sandbox is missing or not ready yet: wait and retry."""

    reason = "SandboxNotReady"


class ServiceCallFailed(OperatorError):
    """The sandbox's service answered with an error (or not at all)."""

    reason = "ServiceError"

    def __init__(self, message: str, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
