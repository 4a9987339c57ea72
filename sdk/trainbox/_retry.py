"""When a failed call may be sent again, and after how long: pure decisions, no I/O.

A call is retried only when repeating it cannot do anything twice:

* ``Safety.IDEMPOTENT`` - reads (``GET``), ``step`` (it always carries a request id; the service answers a
  repeated id with the first result instead of running the action again), ``evaluate`` (it scores the
  instance's state and changes nothing) and ``release`` (releasing twice ends the same way). Retried after
  any transport failure - refused connection, timeout, dropped connection - and after the service says it
  is momentarily full (429, or 503 with ``Retry-After``).
* ``Safety.UNSENT_ONLY`` - ``create``. A create whose answer was lost may have created an instance, and a
  second create would start another one that nobody releases until its idle TTL runs out. So it is
  retried only when the service provably did nothing: the connection was refused (nothing was sent) or
  admission control turned it away (429, or 503 with ``Retry-After``). A create that timed out raises
  ``RequestTimeout``; the trainer decides (usually: drop the rollout). A caller-chosen ``instance_id``
  does not make a lost create recoverable - the retry would meet ``duplicate_instance`` and the lost
  answer held the initial state - so it gets the same rule.

Errors that describe the request or the episode (4xx other than 429) and infrastructure failures the
service already handled (``StepTimeout``, ``InstanceLost``, ``EnvironmentFailure``) are never retried:
repeating them would fail the same way or hide a lost rollout.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from ._exceptions import CapacityExceeded, ConnectError, EnvironmentUnavailable, TrainboxError, TransportError

__all__ = ["RetryPolicy", "Safety"]


class Safety(enum.Enum):
    IDEMPOTENT = "idempotent"
    UNSENT_ONLY = "unsent_only"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry; ``max_retries=0`` turns retries off."""

    max_retries: int = 3
    backoff: float = 0.25  # first wait; doubles per attempt
    max_backoff: float = 8.0
    max_retry_after: float = 30.0  # cap on a server's Retry-After, so a misconfigured server cannot park us

    def delay(self, error: TrainboxError, safety: Safety, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when ``error`` must be raised."""
        if attempt >= self.max_retries:
            return None
        server_wait = _server_retry_after(error)
        if server_wait is not None:
            return min(server_wait, self.max_retry_after)
        if isinstance(error, ConnectError) or (isinstance(error, TransportError) and safety is Safety.IDEMPOTENT):
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        base: float = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)  # jitter keeps a fleet of trainers from retrying in step


def _server_retry_after(error: TrainboxError) -> float | None:
    """The wait the service asked for when it turned the call away before doing anything."""
    if isinstance(error, CapacityExceeded):
        return error.retry_after if error.retry_after is not None else 1.0
    if isinstance(error, EnvironmentUnavailable) and error.response is not None:
        header = error.response.headers.get("retry-after")
        if header is not None:
            try:
                return max(0.0, float(header))
            except ValueError:
                return 1.0
    return None
