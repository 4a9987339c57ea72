"""The error kinds on the wire are one contract: every kind the service can answer is known to the SDK (or
deliberately left to its generic roots) with the same meaning of ``infra``, and the worker speaks the
service's kinds."""

from __future__ import annotations

import httpx
import pytest
import trainbox
from trainbox import _exceptions as sdk
from trainbox_operator import instances
from trainbox_server import errors

# Server kinds the SDK deliberately maps to its roots (RequestError / InfraError): the service's own bugs,
# and routing mistakes no trainer catches by name.
GENERIC = {"internal_error", "not_found", "method_not_allowed"}
# The SDK's own kinds: failures with no answer from the service, and the embedded service's start.
SDK_ONLY = {"transport_error", "connect_error", "request_timeout", "protocol_error", "service_start_error"}


def server_classes() -> list[type[errors.TrainboxError]]:
    """Every class the service can answer with (the root is never raised itself: a kind it does not know
    is an ``InternalError``)."""
    found, level = [], [errors.RequestError, errors.InfraError]
    while level:
        found += level
        level = [sub for cls in level for sub in cls.__subclasses__()]
    return found


def answered(cls: type[errors.TrainboxError]) -> trainbox.TrainboxError:
    """What the SDK raises for the service's answer of ``cls``."""
    response = httpx.Response(cls.status, json={"error": cls("what went wrong").to_dict()})
    return sdk.error_from_response(response)


def test_every_server_kind_is_known_to_the_sdk_or_deliberately_generic() -> None:
    server_kinds = {cls.kind for cls in server_classes()}
    sdk_kinds = {getattr(trainbox, name).kind for name in sdk.__all__} - {trainbox.TrainboxError.kind}
    assert server_kinds - sdk_kinds == GENERIC
    assert sdk_kinds - server_kinds == SDK_ONLY


@pytest.mark.parametrize("cls", server_classes(), ids=lambda cls: cls.__name__)
def test_the_sdk_raises_the_same_kind_with_the_same_infra_flag(cls: type[errors.TrainboxError]) -> None:
    raised = answered(cls)
    assert raised.kind == cls.kind and raised.status_code == cls.status
    assert raised.infra is cls.infra
    assert isinstance(raised, trainbox.InfraError if cls.infra else trainbox.RequestError)
    if cls.kind not in GENERIC:
        assert type(raised).kind == cls.kind, f"{cls.__name__} answered, {type(raised).__name__} raised"


@pytest.mark.parametrize("cls", server_classes(), ids=lambda cls: cls.__name__)
def test_a_kind_read_back_from_the_wire_is_its_class_or_the_first_of_its_kind(cls: type[errors.TrainboxError]) -> None:
    read = errors.from_wire(cls("x").to_dict())
    assert read.kind == cls.kind and read.message == "x"
    assert type(read) is cls or (type(read) is errors.RequestError and cls is errors.InvalidRequest)


def test_an_unknown_kind_from_a_worker_is_an_environment_failure() -> None:
    assert type(errors.from_wire({"kind": "from_a_newer_worker", "message": "m"})) is errors.EnvironmentFailure
    busy = errors.from_wire({"kind": "busy", "message": "m", "retry_after": 3})
    assert isinstance(busy, errors.Busy) and busy.retry_after == 3.0


@pytest.mark.parametrize("cls", server_classes(), ids=lambda cls: cls.__name__)
def test_the_operator_fails_an_instance_exactly_on_the_services_request_errors(
    cls: type[errors.TrainboxError],
) -> None:
    answer = instances.create_answer(answered(cls))
    if cls is errors.DuplicateInstance:
        assert answer is instances.CreateAnswer.ADOPT
    elif issubclass(cls, errors.RequestError):
        assert answer is instances.CreateAnswer.FAILED
    else:
        assert answer is instances.CreateAnswer.RETRY
