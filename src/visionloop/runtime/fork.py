"""Run closures over parts in forked processes, and collect what each returns.

Forked, not spawned: the parts are closures over what the parent already read
(an index, a class map), which a forked child inherits without pickling. Only
results travel back, pickled through a pipe. When any part fails, the others are
stopped and `PartFailed` says why: callers then do the work in one process.
Children follow the pool's policy (`pool.worker_setup`): they leave Ctrl-C to
the parent and exit when the parent dies, even by SIGKILL.

This is the local-only sibling of `Pool`: closures cannot travel to a cluster.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from visionloop.runtime.pool import quiet_opencv, worker_setup

P = TypeVar("P")
T = TypeVar("T")


class PartFailed(Exception):
    """A part could not be done in its process (the message says which and why)."""


def run_forked(parts: Sequence[P], work: Callable[[P], T]) -> list[T]:
    """`work(part)` for every part, each in a forked process; results in part order."""
    ctx = multiprocessing.get_context("fork")
    procs: list[tuple[Any, Connection]] = []
    results: dict[int, Any] = {}
    restore = quiet_opencv()  # else a child that touches OpenCV's thread pool hangs (pool.quiet_opencv)
    try:
        try:
            for part in parts:
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(os.getpid(), work, part, send), daemon=True)
                proc.start()
                send.close()
                procs.append((proc, recv))
        finally:
            restore()
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


def _child(parent: int, work: Callable[[Any], Any], part: Any, send: Connection) -> None:
    worker_setup(parent)
    try:
        result = work(part)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        send.send(("error", f"{type(e).__name__}: {e}"))
    else:
        send.send(("ok", result))
    send.close()
