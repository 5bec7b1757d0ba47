"""Run work over a reader's parts in forked processes, and collect what each returns.

Forked, not spawned: the parts are closures over what the parent already read
(an index, a class map), which a forked child inherits without pickling. Only
results travel back, pickled through a pipe. When any part fails, the others are
stopped and `PartFailed` says why: callers then do the work in one process.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from visionloop.formats.base import ReadPart

T = TypeVar("T")


class PartFailed(Exception):
    """A part could not be done in its process (the message says which and why)."""


def available_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """fork is safe only while this process runs a single thread."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def run_parts(parts: Sequence[ReadPart], work: Callable[[ReadPart], T]) -> list[T]:
    """`work(part)` for every part, each in a forked process; results in part order."""
    ctx = multiprocessing.get_context("fork")
    procs: list[tuple[Any, Connection]] = []
    results: dict[int, Any] = {}
    try:
        for part in parts:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(work, part, send), daemon=True)
            proc.start()
            send.close()
            procs.append((proc, recv))
        waiting: dict[Any, int] = {recv: k for k, (_, recv) in enumerate(procs)}
        while waiting:
            for ready in wait(list(waiting)):
                k = waiting.pop(ready)
                try:
                    status, value = procs[k][1].recv()
                except EOFError:
                    procs[k][0].join()
                    status, value = "error", f"its process ended with exit code {procs[k][0].exitcode}"
                if status != "ok":
                    raise PartFailed(f"part {k + 1} of {len(parts)}: {value}")
                results[k] = value
    finally:
        for proc, recv in procs:
            if proc.is_alive() and len(results) < len(parts):
                proc.terminate()
            proc.join()
            recv.close()
    return [results[k] for k in range(len(parts))]


def _child(work: Callable[[ReadPart], Any], part: ReadPart, send: Connection) -> None:
    try:
        result = work(part)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        send.send(("error", f"{type(e).__name__}: {e}"))
    else:
        send.send(("ok", result))
    send.close()
