"""Finding a process's descendants and waiting for them to go (Linux /proc)."""

from __future__ import annotations

import os
import time


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def wait_for_descendants(pid: int, n: int, timeout: float = 120.0) -> set[int]:
    """The live descendants of `pid` once there are `n`; empty if `pid` ends (or the timeout passes) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        found = {d for d in descendants(pid) if alive(d)}
        if len(found) >= n:
            return found
        time.sleep(0.005)
    return set()


def gone_within(pids: set[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]
