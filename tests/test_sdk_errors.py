"""Every error a user can meet, produced by the real service (or a real socket), arrives as its typed exception."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
import trainbox
from trainbox import TrainingSandbox

from tests.bfcl_replay import single_turn_message
from tests.servicekit import free_port

pytest_plugins = ["tests.sdk_fixtures"]
pytestmark = pytest.mark.slow

CALL = {"role": "assistant", "content": "[cd(folder='document')]"}


@pytest.fixture
def box(trainbox_url: str) -> Iterator[TrainingSandbox]:
    with TrainingSandbox(base_url=trainbox_url) as client:
        yield client


@pytest.mark.parametrize(
    ("call", "expected", "status"),
    [
        (lambda b: b.get_env_profile("no_such_env"), trainbox.UnknownEnvironment, 404),
        (lambda b: b.get_env_profile("bfcl", "no_such_split"), trainbox.UnknownSplit, 404),
        (lambda b: b.create_instance("bfcl", "no_such_task_0"), trainbox.UnknownTask, 404),
        (lambda b: b.create_instance("bfcl", "memory_kv_0"), trainbox.UnsupportedTask, 422),
        (lambda b: b.create_instance("bfcl", "multi_turn_base_0", arch="sparc"), trainbox.BadRequest, 422),
        (lambda b: b.create_group("bfcl", "multi_turn_base_0", 10_000), trainbox.BadRequest, 422),
        (lambda b: b.step("no-such-instance", CALL), trainbox.UnknownInstance, 404),
        (lambda b: b.evaluate("no-such-instance"), trainbox.UnknownInstance, 404),
        (lambda b: b.get_instance("no-such-instance"), trainbox.UnknownInstance, 404),
    ],
)
def test_bad_requests_raise_typed_errors(box, call, expected, status):
    with pytest.raises(expected) as caught:
        call(box)
    error = caught.value
    assert error.status_code == status and error.infra is False and error.attempts == 1
    assert error.response is not None and error.response.status_code == status
    assert error.message and "Traceback" not in error.message


def test_invalid_actions_and_episode_over(box):
    instance_id = box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"]
    with pytest.raises(trainbox.InvalidAction, match="not a literal"):
        box.step(instance_id, {"role": "assistant", "content": "[cd(folder=__import__('os').getcwd())]"})
    with pytest.raises(trainbox.InvalidAction, match="accepted call formats"):
        box.step(instance_id, {"role": "assistant", "content": "<tool_call>{broken</tool_call>"})

    single = next(t for t in box.get_env_profile("bfcl", "train") if t.startswith("simple_python"))
    instance_id = box.create_instance("bfcl", single)["info"]["instance_id"]
    with pytest.raises(trainbox.InvalidAction, match="no function call"):  # a single-turn task wants a call
        box.step(instance_id, {"role": "assistant", "content": "I would rather not."})


def test_step_after_the_episode_ended(box):
    single = next(t for t in box.get_env_profile("bfcl", "train") if t.startswith("simple_python"))
    instance_id = box.create_instance("bfcl", single)["info"]["instance_id"]
    wrong = box.step(instance_id, single_turn_message(single, wrong=True))  # a single-turn task: one answer
    assert wrong["is_terminated"] and wrong["reward"] == 0.0
    with pytest.raises(trainbox.EpisodeOver) as caught:
        box.step(instance_id, CALL)
    assert caught.value.status_code == 409


def test_duplicate_instance_id_is_refused(box):
    chosen = f"sdk-{uuid.uuid4().hex[:12]}"
    created = box.create_instance("bfcl", "multi_turn_base_0", instance_id=chosen)
    assert created["info"]["instance_id"] == chosen
    with pytest.raises(trainbox.DuplicateInstance):
        box.create_instance("bfcl", "multi_turn_base_1", instance_id=chosen)
    assert box.get_instance(chosen)["task_id"] == "multi_turn_base_0"  # the first one was not replaced


def test_token_is_required_and_accepted(restricted_service, monkeypatch):
    url, token = restricted_service.url, restricted_service.env["TRAINBOX_TOKEN"]
    with TrainingSandbox(base_url=url) as anonymous:
        assert anonymous.check_health()  # health needs no token
        with pytest.raises(trainbox.Unauthorized) as caught:
            anonymous.get_env_profile("bfcl")
        assert caught.value.status_code == 401
    with TrainingSandbox(base_url=url, token="wrong") as wrong, pytest.raises(trainbox.Unauthorized):
        wrong.list_environments()
    with TrainingSandbox(base_url=url, token=token) as box:
        assert "bfcl" in box.list_environments()
    monkeypatch.setenv("TRAINBOX_TOKEN", token)
    with TrainingSandbox(base_url=url) as box:
        assert box.get_env_profile("bfcl")


def test_admission_control_and_create_retry(restricted_service, caplog):
    """The service holds TRAINBOX_MAX_LIVE instances: one more is refused with 429; a retrying create gets in once
    an instance is released, and a create that may not retry raises at once with the service's wait."""
    url, token = restricted_service.url, restricted_service.env["TRAINBOX_TOKEN"]
    max_live = int(restricted_service.env["TRAINBOX_MAX_LIVE"])
    with TrainingSandbox(base_url=url, token=token) as box:
        held = [box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"] for _ in range(max_live)]
        impatient = TrainingSandbox(base_url=url, token=token, max_retries=0)
        with pytest.raises(trainbox.CapacityExceeded) as caught:
            impatient.create_instance("bfcl", "multi_turn_base_0")
        impatient.close()
        error = caught.value
        assert error.status_code == 429 and error.infra and error.retry_after and error.retry_after > 0

        release = threading.Timer(1.0, box.release_instance, args=(held[0],))
        release.start()
        with caplog.at_level(logging.DEBUG, logger="trainbox"):
            created = box.create_instance("bfcl", "multi_turn_base_0")  # 429, waits Retry-After, then succeeds
        release.join()
        retries = [r.getMessage() for r in caplog.records if r.name == "trainbox"]
        assert created["info"]["instance_id"] and retries, "the create got in without waiting for room"
        assert all(m.startswith("POST /v1/instances failed") and "live instances" in m for m in retries), retries


def test_unreachable_service_is_a_connect_error():
    port = free_port()  # nothing listens once the socket is closed
    with TrainingSandbox(base_url=f"http://127.0.0.1:{port}", max_retries=1) as box:
        with pytest.raises(trainbox.ConnectError) as caught:
            box.get_env_profile("bfcl")
        assert caught.value.infra and caught.value.attempts == 2 and f":{port}" in str(caught.value)
        assert box.check_health() is False


class _Silent:
    """A real TCP peer that accepts connections, reads requests and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if conn.recv(65536):
                self.requests += 1

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_timeouts_retry_only_what_is_safe_to_repeat():
    silent = _Silent()
    try:
        box = TrainingSandbox(base_url=silent.url, timeout=0.5, max_retries=2)
        with pytest.raises(trainbox.RequestTimeout) as caught:
            box.create_instance("bfcl", "multi_turn_base_0")
        assert caught.value.attempts == 1 and silent.requests == 1  # a create whose answer was lost: not resent

        with pytest.raises(trainbox.RequestTimeout) as caught:
            box.step("some-instance", CALL)
        assert caught.value.attempts == 3 and silent.requests == 4  # a step carries its request id: resent
        box.close()
    finally:
        silent.close()
