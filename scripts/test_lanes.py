"""`make test` in two concurrent lanes, the cluster's first: ``python scripts/test_lanes.py [--serial]``.

The cluster lane (``tests/k8s`` and ``tests/test_images.py``: the test bed's kubelets, containerd, emulated arm64
pods and containers) mostly *waits* — for pods, pulls and controllers; the machine is ≈ 60 % idle meanwhile.
The rest lane (everything else: Ray, services, worker pools, the soak) is CPU-bound. Run side by side, the rest
lane fills the cluster lane's idle time.

Side by side only works with a priority. This kernel groups processes by session for scheduling (autogroup):
every `setsid` daemon of the test bed and every Ray process is its own group with a full share, so `nice` on a
lane changes nothing, and measured without a priority the cluster lane took 1,244 s instead of ≈ 550 s (its
emulated pods starved) and three timing-sensitive tests failed. So the rest lane runs in a CPU cgroup of its own
as one scheduling entity (`cpu.shares` on cgroup v1, `cpu.weight` on v2), whose share the cluster lane lowers
while it runs emulated arm64 work (``TRAINBOX_REST_CGROUP``, tests/lanes.py). Where no cgroup can be made (not
root, no cpu controller) or with ``--serial``, the lanes run one after the other.

Each lane's output goes to the terminal, line by line with its name, and to ``build/test-results/<lane>.log``;
each writes ``build/test-results/junit-<lane>.xml``, with each test's CPU time counted over the lane's processes
(a cpuacct cgroup per lane on v1; tests/cputime.py). The exit status is the first failing lane's (pytest's 5,
"no tests", included).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.cputime import usage_seconds  # noqa: E402  (the repository's tests package, beside scripts/)

RESULTS = REPO / "build" / "test-results"
CLUSTER_PATHS = ["tests/k8s", "tests/test_images.py"]
# What one session group gets: the whole rest lane weighs as one of the cluster lane's daemons. While the cluster
# lane runs Ray under qemu-user it drops this to 64 (tests/lanes.py): at 1,024 throughout, the arm64 server
# container's Ray never came up (659 s, failed). Measured (whole run, lanes side by side): 256 throughout 805 s;
# 256 with the soak moved to the cluster lane 942 s (the machine is CPU-bound once both lanes run: 89 % busy).
REST_SHARES = 1024
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CPUACCT_V1 = Path("/sys/fs/cgroup/cpuacct")  # accounting only: each test's CPU time (tests/cputime.py)
CGROUP_V2 = Path("/sys/fs/cgroup")


@dataclass
class Lane:
    name: str
    args: list[str]
    cgroup: Path | None = None  # the cgroup the lane runs in
    accounting: Path | None = None  # v1: the cpuacct cgroup that counts the lane's CPU time
    rest_cgroup: Path | None = None  # the cluster lane's handle on the rest lane's share
    proc: subprocess.Popen[bytes] | None = None
    began: float = 0.0
    took: float = 0.0
    cpu: float | None = None  # CPU seconds of the lane's processes (containers not included)
    last: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        junit = RESULTS / f"junit-{self.name}.xml"
        # the cluster lane's tests take up to minutes each: a line per test (-v) shows where it is
        verbosity = "-v" if self.name == "cluster" else "-q"
        return [sys.executable, "-m", "pytest", verbosity, "--durations=15", f"--junit-xml={junit}", *self.args]


def lanes() -> list[Lane]:
    ignored = [f"--ignore={path}" for path in CLUSTER_PATHS]
    return [Lane("cluster", CLUSTER_PATHS), Lane("rest", [*ignored, "tests"])]


def cpu_ticks() -> tuple[int, int, int]:
    """(busy, stolen, total) jiffies of the whole machine so far, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    stolen = fields[7] if len(fields) > 7 else 0  # a VM's CPU time the hypervisor gave to someone else
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle - stolen, stolen, total


def busy_between(a: tuple[int, int, int], b: tuple[int, int, int]) -> str:
    total = b[2] - a[2]
    if total <= 0:
        return "CPU busy unknown"
    return f"CPU {100 * (b[0] - a[0]) / total:.0f} % busy, {100 * (b[1] - a[1]) / total:.1f} % stolen"


def make_cgroup(name: str, shares: int) -> Path | None:
    """A CPU cgroup with `shares` (v1) or the equivalent weight (v2); None where none can be made."""
    try:
        if (CGROUP_V1 / "cpu.shares").exists():
            path = CGROUP_V1 / name
            path.mkdir(exist_ok=True)
            (path / "cpu.shares").write_text(str(shares))
            return path
        if "cpu" in (CGROUP_V2 / "cgroup.subtree_control").read_text().split():
            path = CGROUP_V2 / name
            path.mkdir(exist_ok=True)
            (path / "cpu.weight").write_text(str(max(1, shares * 100 // 1024)))
            return path
    except OSError as error:
        print(f"==> no CPU cgroup for the rest lane ({error}): the lanes run one after the other", flush=True)
    return None


def usage_file(lane: Lane) -> Path | None:
    """The file that counts the lane's CPU time: its cpuacct cgroup's (v1) or its cpu cgroup's (v2)."""
    if lane.accounting is not None:
        return lane.accounting / "cpuacct.usage"
    stat = lane.cgroup / "cpu.stat" if lane.cgroup is not None else None
    if stat is not None and stat.exists() and stat.read_text().startswith("usage_usec"):
        return stat
    return None


def make_accounting(name: str) -> Path | None:
    if not (CPUACCT_V1 / "cpuacct.usage").exists():
        return None
    try:
        (CPUACCT_V1 / name).mkdir(exist_ok=True)
    except OSError:
        return None
    return CPUACCT_V1 / name


def remove_cgroup(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        left = (path / "cgroup.procs").read_text().split()
        print(f"==> cgroup {path} kept: processes left in it: {' '.join(left)}", flush=True)


def pump(lane: Lane, log: Path) -> None:
    """The lane's output to the terminal, each line with the lane's name, and to its log."""
    assert lane.proc is not None and lane.proc.stdout is not None
    with log.open("wb") as out:
        for raw in lane.proc.stdout:
            out.write(raw)
            line = raw.decode(errors="replace").rstrip("\n")
            lane.last = [*lane.last[-1:], line]
            print(f"[{lane.name}] {line}", flush=True)


def start(lane: Lane) -> threading.Thread:
    cgroup = lane.cgroup

    joined = [path for path in (lane.cgroup, lane.accounting) if path is not None]

    def join_cgroup() -> None:  # in the child, before exec: pytest and everything it starts belong to it
        for path in joined:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    lane.began = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the lane's lines as they come, not a pipe's blocks
    if lane.name == "cluster" and lane.rest_cgroup is not None:
        env["TRAINBOX_REST_CGROUP"] = str(lane.rest_cgroup)
    usage = usage_file(lane)
    if usage is not None:
        env["TRAINBOX_TEST_CPU"] = str(usage)
    lane.proc = subprocess.Popen(
        lane.command(), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=join_cgroup
    )
    print(f"==> lane {lane.name}: {' '.join(lane.command()[1:])}" + (f" (cgroup {cgroup})" if cgroup else ""),
          flush=True)  # fmt: skip
    thread = threading.Thread(target=pump, args=(lane, RESULTS / f"{lane.name}.log"), daemon=True)
    thread.start()
    return thread


def finish(lane: Lane, thread: threading.Thread) -> int:
    assert lane.proc is not None
    code = lane.proc.wait()
    thread.join()
    lane.took = lane.took or time.monotonic() - lane.began
    usage = usage_file(lane)
    lane.cpu = usage_seconds(str(usage)) if usage is not None else None
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serial", action="store_true", help="one lane after the other, no cgroup")
    options = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    cluster, rest = lanes()
    began = time.monotonic()
    codes: dict[str, int] = {}
    cgroup = None if options.serial else make_cgroup(f"trainbox-tests-{os.getpid()}", REST_SHARES)
    for lane in (cluster, rest):
        lane.accounting = make_accounting(f"trainbox-{lane.name}-{os.getpid()}")
    try:
        if cgroup is None:
            for lane in (cluster, rest):
                codes[lane.name] = finish(lane, start(lane))
        else:
            rest.cgroup = cluster.rest_cgroup = cgroup
            pairs = [(lane, start(lane)) for lane in (cluster, rest)]
            ticks = [cpu_ticks()]
            while any(lane.took == 0 for lane, _ in pairs):  # each lane's end, and the CPU when the first ends
                time.sleep(1)
                for lane, _ in pairs:
                    if lane.took == 0 and lane.proc is not None and lane.proc.poll() is not None:
                        lane.took = time.monotonic() - lane.began
                        ticks.append(cpu_ticks())
            codes = {lane.name: finish(lane, thread) for lane, thread in pairs}
            first, second = sorted((cluster, rest), key=lambda lane: lane.took)
            print(
                f"==> both lanes {first.took:.0f} s, {busy_between(ticks[0], ticks[1])}; then {second.name} alone "
                f"{second.took - first.took:.0f} s, {busy_between(ticks[1], ticks[-1])}",
                flush=True,
            )
    except KeyboardInterrupt:  # the terminal sent it to the lanes too: each tears down what it started
        print("==> interrupted: waiting for the lanes to stop their test beds (Ctrl-C again to kill them)", flush=True)
        for lane in (cluster, rest):
            if lane.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    lane.proc.wait(timeout=600)
        return 130  # what a shell reports for a command ended by SIGINT
    finally:
        for lane in (cluster, rest):
            if lane.proc is not None and lane.proc.poll() is None:
                lane.proc.terminate()
                lane.proc.wait(timeout=60)
        for path in (cgroup, cluster.accounting, rest.accounting):
            if path is not None:
                remove_cgroup(path)
    print(f"==> lanes {'side by side' if cgroup else 'one after the other'} in {time.monotonic() - began:.0f} s",
          flush=True)  # fmt: skip
    for lane in (cluster, rest):
        cpu = f"{lane.cpu:6.0f} s CPU" if lane.cpu is not None else ""
        last = lane.last[-1] if lane.last else ""
        print(f"    {lane.name:8} exit {codes[lane.name]}  {lane.took:6.0f} s {cpu}  {last}", flush=True)
    return next((code for code in codes.values() if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
