"""Reading /proc: a process's memory figures, and a process tree's resident memory. Standard library only
(the worker runs it in every family's interpreter); 0 where /proc or the process is missing."""

from __future__ import annotations


def status_kib(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A ``kB`` line of /proc/<pid>/status (``VmRSS``: resident now; ``VmPeak``: the largest address space)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith(f"{field}:")), 0)
    except (OSError, ValueError):
        return 0


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (a sandboxed worker runs below bubblewrap)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += status_kib(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (OSError, ValueError):
            continue
    return total
