"""Pure parts of the SDK, table-driven: error mapping, retry decisions, request bodies.

The retry tests drive the real client through an injected httpx transport (as httpx's own tests do) to
observe what is sent on the wire; everything else runs against the real service in test_sdk.py.
"""

import json

import httpx
import pytest
import trainbox
from trainbox._exceptions import error_from_response, error_from_transport
from trainbox._retry import RetryPolicy, Safety


def _answer(status: int, kind: str, infra: bool, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"kind": kind, "message": f"{kind} happened", "infra": infra}}
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", "http://t/v1/x"))


@pytest.mark.parametrize(
    ("status", "kind", "infra", "expected"),
    [
        (400, "bad_request", False, trainbox.BadRequest),
        (422, "bad_request", False, trainbox.BadRequest),
        (401, "unauthorized", False, trainbox.Unauthorized),
        (404, "unknown_environment", False, trainbox.UnknownEnvironment),
        (404, "unknown_split", False, trainbox.UnknownSplit),
        (404, "unknown_task", False, trainbox.UnknownTask),
        (404, "unknown_instance", False, trainbox.UnknownInstance),
        (409, "duplicate_instance", False, trainbox.DuplicateInstance),
        (422, "invalid_action", False, trainbox.InvalidAction),
        (422, "unsupported_task", False, trainbox.UnsupportedTask),
        (409, "episode_over", False, trainbox.EpisodeOver),
        (504, "timeout", True, trainbox.StepTimeout),
        (410, "instance_lost", True, trainbox.InstanceLost),
        (503, "environment_unavailable", True, trainbox.EnvironmentUnavailable),
        (429, "capacity_exceeded", True, trainbox.CapacityExceeded),
        (500, "environment_failure", True, trainbox.EnvironmentFailure),
        (422, "unavailable_architecture", False, trainbox.UnavailableArchitecture),
        (503, "busy", True, trainbox.Busy),
        (418, "some_new_kind", False, trainbox.RequestError),
        (500, "error", True, trainbox.InfraError),
        (502, "some_new_infra_kind", True, trainbox.InfraError),
    ],
)
def test_error_answers_map_to_typed_exceptions(status, kind, infra, expected):
    error = error_from_response(_answer(status, kind, infra and kind != "error"))
    assert type(error) is expected
    assert (error.status_code, error.kind, error.infra) == (status, kind, infra)
    assert error.message == f"{kind} happened"
    assert error.response is not None and error.request is not None
    assert str(error) == f"[{status} {kind}] {kind} happened"


def test_capacity_exceeded_carries_retry_after():
    error = error_from_response(_answer(429, "capacity_exceeded", True, {"Retry-After": "2.5"}))
    assert isinstance(error, trainbox.CapacityExceeded) and error.retry_after == 2.5


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, "<html>Bad Gateway</html>", trainbox.ProtocolError),
        (404, "Not Found", trainbox.ProtocolError),
        (422, json.dumps({"detail": [{"loc": ["body", "x"], "msg": "field required"}]}), trainbox.BadRequest),
    ],
)
def test_answers_that_are_not_ours(status, body, expected):
    error = error_from_response(httpx.Response(status, text=body))
    assert type(error) is expected
    assert error.status_code == status


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), trainbox.ConnectError),
        (httpx.ConnectTimeout("slow"), trainbox.ConnectError),
        (httpx.PoolTimeout("busy"), trainbox.ConnectError),
        (httpx.ReadTimeout("slow"), trainbox.RequestTimeout),
        (httpx.RemoteProtocolError("dropped"), trainbox.ProtocolError),
        (httpx.ReadError("reset"), trainbox.ProtocolError),
    ],
)
def test_transport_failures_are_infra(exc, expected):
    error = error_from_transport(exc, "http://127.0.0.1:1/v1/x")
    assert type(error) is expected
    assert error.infra and "http://127.0.0.1:1/v1/x" in error.message


_POLICY = RetryPolicy(max_retries=2, backoff=0.01)


@pytest.mark.parametrize(
    ("error", "idempotent", "unsent_only"),
    [
        (trainbox.ConnectError("refused"), True, True),
        (trainbox.RequestTimeout("slow"), True, False),
        (trainbox.ProtocolError("dropped"), True, False),
        (trainbox.CapacityExceeded("full", retry_after=0.5), True, True),
        (trainbox.StepTimeout("slow step"), False, False),
        (trainbox.InstanceLost("gone"), False, False),
        (trainbox.EnvironmentFailure("boom"), False, False),
        (trainbox.EnvironmentUnavailable("not installed"), False, False),
        (trainbox.InvalidAction("bad"), False, False),
        (trainbox.UnknownInstance("gone"), False, False),
    ],
)
def test_retry_decisions(error, idempotent, unsent_only):
    assert (_POLICY.delay(error, Safety.IDEMPOTENT, 0) is not None) is idempotent
    assert (_POLICY.delay(error, Safety.UNSENT_ONLY, 0) is not None) is unsent_only
    assert _POLICY.delay(error, Safety.IDEMPOTENT, 2) is None  # attempts are bounded


def test_retry_after_is_honoured_and_capped():
    assert _POLICY.delay(trainbox.CapacityExceeded("full", retry_after=0.5), Safety.UNSENT_ONLY, 0) == 0.5
    capped = RetryPolicy(max_retry_after=3.0).delay(
        trainbox.CapacityExceeded("x", retry_after=600), Safety.IDEMPOTENT, 0
    )
    assert capped == 3.0
    unavailable = error_from_response(_answer(503, "environment_unavailable", True, {"Retry-After": "1"}))
    assert _POLICY.delay(unavailable, Safety.UNSENT_ONLY, 0) == 1.0


class _Script:
    """A transport that answers from a script and records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


_STEP_OK = {"state": [{"role": "user", "content": "ok"}], "reward": 0.0, "is_terminated": False, "info": {}}


def test_step_retries_with_the_same_request_id():
    script = _Script(httpx.ReadTimeout("lost"), httpx.Response(200, json=_STEP_OK))
    box = trainbox.TrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script), max_retries=2)
    assert box.step("i1", {"role": "assistant", "content": "x"}) == _STEP_OK
    ids = [json.loads(request.content)["request_id"] for request in script.sent]
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0]


def test_create_is_not_retried_after_a_lost_answer():
    script = _Script(httpx.ReadTimeout("lost"), httpx.Response(500))
    box = trainbox.TrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script), max_retries=3)
    with pytest.raises(trainbox.RequestTimeout) as caught:
        box.create_instance("bfcl", "multi_turn_base_0")
    assert len(script.sent) == 1 and caught.value.attempts == 1 and caught.value.infra


def test_create_is_retried_when_admission_turned_it_away():
    created = {"instances": [{"instance_id": "i1", "env_type": "bfcl", "task_id": "t", "state": [], "info": {}}]}
    full = _answer(429, "capacity_exceeded", True, {"Retry-After": "0"})
    script = _Script(full, httpx.Response(200, json=created))
    box = trainbox.TrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script))
    result = box.create_instance("bfcl", "t")
    assert result["info"]["instance_id"] == "i1" and len(script.sent) == 2
    assert box.owned_instances == {"i1"}


async def test_async_release_after_lost_answer_counts_as_released():
    gone = _answer(404, "unknown_instance", False)
    script = _Script(httpx.ReadError("reset"), gone)
    box = trainbox.AsyncTrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script))
    assert await box.release_instance("i1") is True
    script = _Script(gone)
    box = trainbox.AsyncTrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script))
    assert await box.release_instance("i1") is False


def test_unexpected_success_body_is_a_protocol_error():
    script = _Script(httpx.Response(200, json={"state": "not a list"}))
    box = trainbox.TrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script))
    with pytest.raises(trainbox.ProtocolError, match="does not understand"):
        box.step("i1", {"role": "assistant", "content": "x"})


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRAINBOX_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("TRAINBOX_TOKEN", "s3cret")
    monkeypatch.setenv("TRAINBOX_TIMEOUT", "7")
    box = trainbox.TrainingSandbox()
    assert box.base_url == "http://127.0.0.1:9" and not box.embedded
    assert box._headers()["authorization"] == "Bearer s3cret"
    assert box._timeout.read == 7.0
    assert trainbox.TrainingSandbox(base_url="http://x", bearer_token="t2")._headers()["authorization"] == "Bearer t2"
    assert trainbox.TrainingSandbox(base_url="127.0.0.1:8080").base_url == "http://127.0.0.1:8080"
    monkeypatch.delenv("TRAINBOX_URL")
    assert trainbox.TrainingSandbox().embedded


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("host-amd64-3f2a-0--9c1d", "host-amd64-3f2a-0--9c1d"),
        ("ns:run-1", "ns:run-1"),
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        ("x?y#z", "x%3Fy%23z"),
        ("", "%20"),
    ],
)
def test_ids_stay_one_path_segment(value, segment):
    script = _Script(_answer(404, "unknown_instance", False))
    box = trainbox.TrainingSandbox(base_url="http://t", transport=httpx.MockTransport(script))
    with pytest.raises(trainbox.UnknownInstance):
        box.get_instance(value)
    assert script.sent[0].url.raw_path.decode() == f"/v1/instances/{segment}"
