"""Worker process main: hosts instances of one environment family and answers framed requests on pipes.

Started by the runtime as ``python -m trainbox_server.runtime.worker <family> [--judge]`` with the
family's own interpreter (``--judge``: the family's evaluator process, its registry entry's ``judge_module``).
Runs in the main thread (AppWorld's execution timeout uses SIGALRM). The protocol uses private copies of
stdin/stdout; fds 0/1 are then pointed at /dev/null and stderr, so whatever model code reads or prints
cannot corrupt a frame. A reply that cannot be encoded, or is too large, is that request's error, never
the worker's. Standard library + the family's engine only.
"""

from __future__ import annotations

import os
import resource
import select
import sys
import time
import traceback
from typing import Any

from trainbox_server.envs.base import Family, Instance, load_family
from trainbox_server.errors import (
    EnvironmentFailure,
    InstanceLost,
    InvalidAction,
    NotForkable,
    RequestError,
    TrainboxError,
)
from trainbox_server.runtime.framing import FrameError, encode, read_frame
from trainbox_server.runtime.memory import IdleTrim, emptied_table, release_memory
from trainbox_server.runtime.procfs import status_kib


def _take_protocol_fds() -> tuple[int, int]:
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_in, proto_out


def _limit_memory() -> None:
    limit_mb = int(os.environ.get("TRAINBOX_WORKER_MEMORY_MB", "0"))
    if limit_mb > 0:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


OUT_OF_MEMORY = "the instance exceeded the worker's memory limit"


def _near_memory_limit() -> bool:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return False
    # without /proc (a sandbox may hide it) the peak resident size is the best we know
    peak = status_kib("self", "VmPeak") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * 1024 >= 0.9 * limit


MAX_REPLY_BYTES = int(os.environ.get("TRAINBOX_MAX_REPLY_BYTES", str(16 * 1024 * 1024)))


class WorkerServer:
    """Dispatches requests to the family and its instances. One request at a time, in order."""

    def __init__(self, family: Family, judge: Any = None) -> None:
        self.family = family
        self.judge = judge
        self.instances: dict[str, Instance] = {}
        self.infos: dict[str, dict[str, Any]] = {}  # what create returned as info (tools, ...)
        self.idle = IdleTrim()  # when an emptied worker gives memory back (runtime.memory)

    def handle(self, op: str, args: dict[str, Any]) -> Any:
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise RequestError(f"unknown worker op {op!r}")
        return handler(**args)

    def _instance(self, instance_id: str) -> Instance:
        try:
            return self.instances[instance_id]
        except KeyError:
            raise RequestError(f"instance {instance_id!r} is not hosted by this worker") from None

    def op_ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "instances": len(self.instances), "rss_kib": status_kib()}

    def op_tasks(self, split: str) -> list[str]:
        return self.family.task_ids(split)

    def op_create(self, instance_id: str, task_id: str, params: dict[str, Any]) -> dict[str, Any]:
        created, instance = self.family.create(task_id, params)
        self.instances[instance_id] = instance
        self.infos[instance_id] = created.info
        return {"messages": created.messages, "info": created.info}

    def op_info(self, instance_id: str) -> dict[str, Any]:
        self._instance(instance_id)
        return self.infos.get(instance_id, {})

    def op_step(self, instance_id: str, message: dict[str, Any]) -> dict[str, Any]:
        instance = self._instance(instance_id)
        result = instance.step(message)
        reply = {
            "messages": result.messages,
            "reward": result.reward,
            "terminated": result.terminated,
            "info": result.info,
        }
        if result.judge:  # the evaluator gives this step's reward: hand the state over with the reply
            reply["state"] = self.op_export_state(instance_id)
        return reply

    def op_fork(self, instance_id: str, new_ids: list[str]) -> int:
        """Copies of an instance in this process, under new ids (families whose instances can copy)."""
        source = self._instance(instance_id)
        fork = getattr(source, "fork", None)
        if fork is None or self.family.max_instances_per_process <= 1:
            raise NotForkable(f"{self.family.name} instances are not copied in their process")
        for new_id in new_ids:
            self.instances[new_id] = fork()
            self.infos[new_id] = self.infos.get(instance_id, {})
        return len(new_ids)

    def op_export_state(self, instance_id: str) -> Any:
        export = getattr(self._instance(instance_id), "export_state", None)
        if export is None:
            raise RequestError(f"{self.family.name} instances cannot export their state")
        return export()

    def op_judge(self, task_id: str, state: Any, sparse: bool) -> dict[str, Any]:
        if self.judge is None:
            raise RequestError("this worker is not an evaluator")
        evaluation = self.judge.judge(task_id, state, sparse)
        return {"reward": evaluation.reward, "details": evaluation.details}

    def op_evaluate(self, instance_id: str, params: dict[str, Any]) -> dict[str, Any]:
        evaluation = self._instance(instance_id).evaluate(params)
        return {"reward": evaluation.reward, "details": evaluation.details}

    def op_close(self, instance_id: str) -> bool:
        instance = self.instances.pop(instance_id, None)
        self.infos.pop(instance_id, None)
        if instance is not None:
            instance.close()
        self.instances, self.infos = emptied_table(self.instances), emptied_table(self.infos)
        if not self.instances:
            self.idle.emptied()
        return instance is not None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message}}


def _load_judge(family_name: str) -> Any:
    import importlib

    from trainbox_server.envs.registry import FAMILIES

    family = FAMILIES.get(family_name)
    if family is None or family.judge_module is None:
        raise SystemExit(f"{family_name!r} has no evaluator process")
    return importlib.import_module(family.judge_module).make_judge()


def serve(family_name: str, judge_role: bool = False) -> int:
    proto_in, proto_out = _take_protocol_fds()
    _limit_memory()
    started = time.monotonic()
    try:
        family = load_family(family_name)
    except TrainboxError as exc:  # e.g. this interpreter has another release: the runtime says so to its callers
        _write(proto_out, encode({"id": 0, **_error(exc.kind, str(exc))}))
        return 2
    judge = _load_judge(family_name) if judge_role else None
    warm = getattr(judge if judge_role else family, "warm", None)
    if callable(warm):
        warm()
    server = WorkerServer(family, judge)
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "family": family.name,
        "max_instances": family.max_instances_per_process,
        "load_seconds": round(time.monotonic() - started, 3),
    }
    _write(proto_out, encode({"id": 0, "ok": True, "result": ready}))
    while True:
        wait = server.idle.wait()  # a trim is owed: read with that timeout, and trim when it passes
        if wait is not None and not select.select([proto_in], [], [], wait)[0]:
            if server.idle.observe(len(server.instances)):
                release_memory()
            continue
        try:
            request = read_frame(proto_in)
        except EOFError:
            return 0
        reply = _dispatch(server, request)
        reply["id"] = request.get("id") if isinstance(request, dict) else None
        _write(proto_out, _encode_reply(reply))
        if reply.get("fatal"):
            return 3


def _encode_reply(reply: dict[str, Any]) -> bytes:
    """The reply's frame; a result that cannot be encoded, or is too large, is that request's error."""
    try:
        frame = encode(reply)
    except (FrameError, ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        why = "is too large" if isinstance(exc, FrameError) else f"cannot be encoded ({type(exc).__name__})"
        return encode({**_error("invalid_action", f"the result of this action {why}"), "id": reply.get("id")})
    if len(frame) > MAX_REPLY_BYTES:
        message = f"the result of this action is {len(frame)} bytes, over the {MAX_REPLY_BYTES}-byte limit"
        return encode({**_error("invalid_action", message), "id": reply.get("id")})
    return frame


def _write(fd: int, frame: bytes) -> None:
    data = memoryview(frame)
    while data:
        data = data[os.write(fd, data) :]


def _dispatch(server: WorkerServer, request: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "result": server.handle(request["op"], request.get("args") or {})}
    except TrainboxError as exc:  # the adapter's refusal: its kind goes on the wire as it is
        return _error(exc.kind, exc.message)
    except RecursionError:
        return _error(InvalidAction.kind, "the action is nested too deeply to process")
    except MemoryError:
        if not _near_memory_limit():  # e.g. the parser's own stack: the input, not the process, is at fault
            return _error(InvalidAction.kind, "the action is too large or nested too deeply to process")
        # The process may be in a bad state: report, then let the runtime replace it.
        return {**_error(InstanceLost.kind, OUT_OF_MEMORY), "fatal": True}
    except SystemExit:
        # Running out of memory inside an engine's own error handling can surface as SystemExit too.
        if _near_memory_limit():
            return {**_error(InstanceLost.kind, OUT_OF_MEMORY), "fatal": True}
        return {**_error(InstanceLost.kind, "the action tried to exit the worker process"), "fatal": True}
    except Exception as exc:  # an adapter bug: log it here, send only its type across the pipe
        traceback.print_exc()
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return _error(EnvironmentFailure.kind, f"the environment failed: {type(exc).__name__}: {detail}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--judge"]):
        sys.exit("usage: python -m trainbox_server.runtime.worker <family> [--judge]")
    sys.exit(serve(sys.argv[1], judge_role=sys.argv[2:] == ["--judge"]))
