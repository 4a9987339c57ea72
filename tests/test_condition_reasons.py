"""Every condition reason the operator can write is a member of the enum next to its condition, and the
conditions module's docstring documents exactly those members."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from trainbox_operator import conditions as c
from trainbox_operator import instances
from trainbox_operator import status as st

SOURCES = sorted((Path(__file__).parents[1] / "operator" / "trainbox_operator").glob("*.py"))
ALL_VALUES = {str(member) for enum in c.REASONS for member in enum}
# Where a reason is an argument: condition(type, ok, reason, ...) and waiting_status(body, reason, ...).
REASON_ARGUMENT = {"condition": 2, "waiting_status": 1}


def reason_arguments() -> list[tuple[str, int, ast.expr]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in REASON_ARGUMENT and len(node.args) > REASON_ARGUMENT[name]:
                found.append((path.name, node.lineno, node.args[REASON_ARGUMENT[name]]))
    return found


def test_the_operator_writes_reasons_only_as_enum_members() -> None:
    arguments = reason_arguments()
    assert len(arguments) >= 15  # the scan sees the operator's conditions
    for where, line, argument in arguments:
        assert not isinstance(argument, ast.Constant), f"{where}:{line}: a literal reason"
        if isinstance(argument, ast.Subscript):  # the sandbox's Ready takes its blocking part's reason
            assert ast.unparse(argument) == "blocking['reason']", f"{where}:{line}"
            continue
        if isinstance(argument, ast.Name):  # waiting_status hands its (typed) argument on; its callers are seen
            assert (where, argument.id) == ("instances.py", "reason"), f"{where}:{line}"
            continue
        text = ast.unparse(argument)
        members = re.findall(r"c\.(\w+)\.(\w+)", text)
        assert members, f"{where}:{line}: {text} is not a reason enum's member"
        for enum_name, member in members:
            assert member in getattr(c, enum_name).__members__, f"{where}:{line}: {text}"


def test_no_reason_is_spelled_out_elsewhere() -> None:
    for path in SOURCES:
        if path.name == "conditions.py":
            continue
        literals = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        assert not literals & ALL_VALUES - {c.READY}, f"{path.name}: {literals & ALL_VALUES}"


def test_each_enum_belongs_to_a_condition_and_the_docstring_lists_exactly_its_members() -> None:
    doc = c.__doc__ or ""
    documented = set(re.findall(r"``(\w+)``", doc)) - {e.__name__ for e in c.REASONS}
    assert documented == ALL_VALUES
    for enum, kind in c.REASONS.items():
        assert kind in {c.READY, c.RAYCLUSTER_READY, c.WORKERS_READY, c.FRONT_READY, c.EXPIRED, c.RELEASED, c.FAILED}
        assert f"``{enum.__name__}``" in doc


BODY = {"metadata": {"uid": "u", "generation": 1}, "spec": {"workerGroups": [{"arch": "amd64", "replicas": 1}]}}


@pytest.mark.parametrize(
    "observed",
    [
        st.Observed(),
        st.Observed(raycluster={"status": {"state": "ready"}}, front_answers=False),
        st.Observed(raycluster={"status": {"state": "ready"}}, deployment={"status": {"readyReplicas": 1}}),
    ],
)
def test_the_sandbox_status_reasons_are_members(observed: st.Observed) -> None:
    status = st.sandbox_status(BODY, observed, "http://front", "2026-01-01T00:00:00Z")
    parts = {c.RAYCLUSTER_READY: c.RayClusterReadyReason, c.WORKERS_READY: c.WorkersReadyReason}
    parts[c.FRONT_READY] = c.FrontReadyReason
    allowed = {kind: set(enum) for kind, enum in parts.items()}
    allowed[c.READY] = set(c.SandboxReady).union(*allowed.values())  # or the blocking part's reason
    for condition in status["conditions"]:
        assert condition["reason"] in allowed[condition["type"]], condition
        assert type(condition["reason"]) is str  # plain strings go to the API server


def test_the_instance_status_reasons_are_members() -> None:
    now = "2026-01-01T00:00:00Z"
    written = [
        *instances.failed_status(BODY, "no such task", now)["conditions"],
        *instances.expired_status(BODY, now, by_service=True)["conditions"],
        *instances.expired_status(BODY, now, by_service=False)["conditions"],
        *instances.waiting_status(BODY, c.InstanceReady.CREATING, "in flight", now)["conditions"],
    ]
    allowed = {c.READY: c.InstanceReady, c.EXPIRED: c.ExpiredReason, c.RELEASED: c.ReleasedReason}
    allowed[c.FAILED] = c.FailedReason
    for condition in written:
        assert condition["reason"] in allowed[condition["type"]].__members__.values(), condition
