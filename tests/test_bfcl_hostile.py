"""One hostile BFCL action costs only its own instance: the payloads of issue 13, sent by a victim that
shares a real BFCL worker with live co-tenants, which must keep serving and keep their state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from trainbox_server.envs.bfcl.calls import LIMITS, CallSyntaxError, check_value
from trainbox_server.errors import InstanceLost, InvalidAction, StepTimeout
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

in_module_loop = pytest.mark.asyncio(loop_scope="module")
TASK = "multi_turn_base_15"  # GorillaFileSystem + MathAPI
BIG_FILE = "x" * 200_000
# BFCL 2026.3.23's echo writes only to a file that exists: touch it first
WRITE_BIG_FILE = f"[touch(file_name='big.txt'), echo(content='{BIG_FILE}', file_name='big.txt')]"


def say(text: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


HOSTILE: dict[str, dict[str, Any]] = {
    "an integer of 4,000 hex digits": say("[mkdir(dir_name=0x" + "f" * 4000 + ")]"),
    "100,000 unary minus signs": say("[mkdir(dir_name=" + "-" * 100_000 + "1)]"),
    "5,000 nested lists": say("[mkdir(dir_name=" + "[" * 5000 + "]" * 5000 + ")]"),
    "an integer of 5,000 decimal digits": say("[mkdir(dir_name=" + "9" * 5000 + ")]"),
    "JSON arguments nested 5,000 deep": {
        "role": "assistant",
        "tool_calls": [{"id": "1", "type": "function", "function": {"name": "mkdir", "arguments": "[" * 5000}}],
    },
    "a content part whose text is a number": {"role": "assistant", "content": [{"type": "text", "text": 5}]},
    "a reply larger than the frame limit": say("[" + ",".join(["cat(file_name='big.txt')"] * 100) + "]"),
    "a 2 MB call list": say("[" + ",".join([f"mkdir(dir_name='{'d' * 1000}')"] * 2000) + "]"),
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime() -> AsyncIterator[Runtime]:
    bfcl = FamilyConfig("bfcl", warm=1, processes=1, step_timeout=5.0)  # one worker: everyone shares it
    async with Runtime(RuntimeConfig(families={"bfcl": bfcl})) as rt:
        yield rt


async def bystanders(runtime: Runtime, count: int = 3) -> list[str]:
    made = []
    for index in range(count):
        instance = (await runtime.create("bfcl", TASK)).instance_id
        await runtime.step(instance, say(f"[mkdir(dir_name='kept{index}')]"))
        made.append(instance)
    return made


async def assert_intact(runtime: Runtime, instances: list[str]) -> None:
    for index, instance in enumerate(instances):
        listing = (await runtime.step(instance, say("[ls()]"))).messages[-1]["content"]
        assert f"kept{index}" in listing  # state from before the attack
        await runtime.close(instance)


@pytest.mark.slow
@in_module_loop
@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_hostile_action_is_the_instances_invalid_action(runtime: Runtime, name: str) -> None:
    others = await bystanders(runtime)
    victim = await runtime.create("bfcl", TASK)
    await runtime.step(victim.instance_id, say(WRITE_BIG_FILE))
    with pytest.raises(InvalidAction) as refused:
        await runtime.step(victim.instance_id, HOSTILE[name])
    assert not refused.value.infra and len(refused.value.message) < 2000
    assert runtime.instances[victim.instance_id][1].pid == victim.worker_pid  # the shared worker lives on
    assert "big.txt" in (await runtime.step(victim.instance_id, say("[ls()]"))).messages[-1]["content"]
    await runtime.close(victim.instance_id)
    await assert_intact(runtime, others)


@pytest.mark.slow
@in_module_loop
@pytest.mark.parametrize("action", ["[power(base=3, exponent=1000000000)]", "[mkdir(dir_name='x')]"])
async def test_a_step_past_its_timeout_costs_only_the_offender(runtime: Runtime, action: str) -> None:
    others = await bystanders(runtime)
    victim = await runtime.create("bfcl", TASK)
    restored = runtime.restored
    timeout = 5.0 if "power" in action else 1e-6  # a client timeout too short for any step
    with pytest.raises(StepTimeout):
        await runtime.step(victim.instance_id, say(action), timeout=timeout)
    with pytest.raises(InstanceLost):
        await runtime.step(victim.instance_id, say("[ls()]"))
    await assert_intact(runtime, others)  # restored in a fresh worker from their last completed step
    assert runtime.restored == restored + len(others)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (1, True),
        (2**LIMITS.int_bits, False),
        (-(2**LIMITS.int_bits - 1), True),
        ([[[1]]], True),
        ({"a": [{"b": 1}]}, True),
        ("x" * 100, True),
        (True, True),
    ],
    ids=["small int", "int past the bound", "negative int within", "nested list", "nested dict", "string", "bool"],
)
def test_argument_value_bounds(value: Any, ok: bool) -> None:
    if ok:
        check_value(value, "f")
    else:
        with pytest.raises(CallSyntaxError):
            check_value(value, "f")


def test_nesting_past_the_bound_is_refused() -> None:
    value: Any = 1
    for _ in range(LIMITS.depth + 1):
        value = [value]
    with pytest.raises(CallSyntaxError, match="nest"):
        check_value(value, "f")
