"""Keeps the embedded service from outliving the program that started it, however that program ends.

``python -m trainbox._watchdog COMMAND...`` runs COMMAND (the service) as its child and waits. The SDK holds
the only write end of the watchdog's stdin and never writes: when the SDK's process ends - ``close()``,
normal exit, an exception, SIGKILL, a crash - the pipe closes, the watchdog reads end-of-file and stops
the service's whole tree (the service first, gracefully; then whatever it left). SIGTERM does the same.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from ._proctree import descendants, stop_leftovers

STOP_GRACE = 15.0


def _until_eof(stop: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


def main(command: list[str]) -> int:
    if not command:
        print("usage: python -m trainbox._watchdog COMMAND...", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    threading.Thread(target=_until_eof, args=(stop,), daemon=True).start()
    while not stop.wait(0.2):
        if child.poll() is not None:
            return child.returncode
    tree = descendants(child.pid)  # before it dies: afterwards its children are re-parented
    child.terminate()
    try:
        child.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    stop_leftovers(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
