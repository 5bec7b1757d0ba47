"""Pool: the one process pool for every bulk job (version generation, perceptual hashing, and later batch
inference and embeddings).

    with Pool(2, initializer=init, initargs=(url,), name="hashing") as pool:
        for result in pool.imap(work, batches):             # ordered, at most `window` batches in flight
            ...

One policy for all of them:

- start method: fork while this process runs a single thread (fast; scripts need no
  `if __name__ == "__main__"`), forkserver when other threads run (forking them could deadlock),
  spawn where neither exists;
- per-worker initialisation: `initializer(*initargs)` once in each worker, after the pool's own set-up
  (SIGINT ignored — the parent decides what an interrupt means — and OpenCV on one thread);
- bounded work in flight (`imap`'s window), results in order or as they finish;
- Ctrl-C (or any error) in the parent cancels what is queued and terminates the workers;
- a worker that dies (killed, out of memory) is a `WorkerDied` error naming the job, not a hang;
- no orphans: every worker watches its parent and exits within `WATCH_INTERVAL` seconds of the parent's
  death, even a SIGKILL that leaves the parent no chance to clean up.

Jobs submit pure functions over batches (module-level functions and picklable arguments), so a Ray
backend can implement the same `submit` / `imap` interface.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from visionloop.core.errors import VisionLoopError
from visionloop.core.owner import pid_alive

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: how often a worker checks that its parent is alive (seconds)
WATCH_INTERVAL = 0.25


class WorkerDied(VisionLoopError):
    """A worker process ended without returning its result (killed, or out of memory)."""


def available_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def python_threads() -> int:
    """Threads of this process that run Python code, those started with `_thread` too (a test runner's or
    RPC library's), which `threading.active_count()` does not see. A fork while one of them holds a lock (the
    import lock, logging's, an I/O buffer's) hangs the child; it was seen in a test worker."""
    return max(len(sys._current_frames()), threading.active_count())


def start_context() -> Any:
    """fork while this process runs one thread; forkserver when other threads run; spawn where neither exists."""
    methods = multiprocessing.get_all_start_methods()
    if can_fork():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def can_fork() -> bool:
    """fork is safe only while this process runs a single Python thread (native pools such as OpenBLAS's run no
    Python and are fork-safe)."""
    return "fork" in multiprocessing.get_all_start_methods() and python_threads() == 1


def quiet_opencv() -> Callable[[], None]:
    """Make this process safe to fork as far as OpenCV is concerned; returns the function that undoes it.

    OpenCV's own thread pool does not survive a fork: once the parent has run a parallel OpenCV call (a
    resize, a blur — rapidocr, the health checks), a forked child that touches the pool, even through
    `cv2.setNumThreads`, waits forever on threads that exist only in the parent (seen as a hung test worker).
    One thread joins the pool's workers; the parent gets its threads back when the forks are done."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        return lambda: None
    before = cv2.getNumThreads()
    if before == 1:
        return lambda: None
    cv2.setNumThreads(1)
    return lambda: cv2.setNumThreads(before)


# -- in the worker ----------------------------------------------------------------------------
def watch_parent(parent: int | None = None, interval: float = WATCH_INTERVAL) -> None:
    """Exit this process as soon as its parent changes (the parent died and it was re-parented) or `parent`, the
    process that asked for it, is gone. Both, because under forkserver the parent is the fork server (which
    exits when the asker dies), and because the asker may die before this runs."""
    first = os.getppid()

    def gone() -> bool:
        return os.getppid() != first or (parent is not None and not pid_alive(parent))

    if gone():
        os._exit(1)

    def _watch() -> None:
        while True:
            time.sleep(interval)
            if gone():
                os._exit(1)

    threading.Thread(target=_watch, name="visionloop-parent-watch", daemon=True).start()


def worker_setup(parent: int | None = None) -> None:
    """What every worker process does first: leave interrupts to the parent, one OpenCV thread, watch the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    watch_parent(parent)


def _bootstrap(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    worker_setup(parent)
    if initializer is not None:
        initializer(*initargs)


# -- in the parent ----------------------------------------------------------------------------
class Pool:
    """A local process pool with the policy above. `workers` must be at least 1 (callers that can run in
    their own process do so themselves)."""

    def __init__(self, workers: int, *, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = (), name: str = "work", context: Any = None) -> None:
        if workers < 1:
            raise ValueError("a Pool needs at least one worker")
        self.workers = workers
        self.name = name
        context = context or start_context()
        # forked workers start lazily (at the first submit): OpenCV stays fork-safe until the pool closes
        self._restore = quiet_opencv() if context.get_start_method() == "fork" else (lambda: None)
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_bootstrap, initargs=(os.getpid(), initializer, initargs))

    # -- context ------------------------------------------------------------------------------
    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    def close(self) -> None:
        """Wait for the work in flight, then stop the workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._restore()

    def terminate(self) -> None:
        """Cancel what is queued and stop the workers now (after Ctrl-C or an error)."""
        executor, self._executor = self._executor, None
        self._restore()
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
                p.kill()
                p.join()

    # -- work ---------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        if self._executor is None:
            raise RuntimeError(f"the {self.name} pool is closed")
        try:
            return self._executor.submit(fn, *args)
        except BrokenProcessPool as e:
            raise self._died() from e

    def result(self, future: Future[R]) -> R:
        """A future's result; a dead worker becomes `WorkerDied`."""
        try:
            return future.result()
        except BrokenProcessPool as e:
            raise self._died() from e

    def imap(self, fn: Callable[[T], R], items: Iterable[T], *, ordered: bool = True,
             window: int | None = None) -> Iterator[R]:
        """`fn(item)` for every item, at most `window` (default 2 per worker) in flight at once; results in
        item order, or as they finish with `ordered=False`."""
        window = max(1, window or 2 * self.workers)
        it = iter(items)
        if ordered:
            pending: deque[Future[R]] = deque()
            for item in it:
                pending.append(self.submit(fn, item))
                if len(pending) >= window:
                    yield self.result(pending.popleft())
            while pending:
                yield self.result(pending.popleft())
            return
        running: set[Future[R]] = set()
        exhausted = False
        while True:
            while not exhausted and len(running) < window:
                try:
                    running.add(self.submit(fn, next(it)))
                except StopIteration:
                    exhausted = True
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)  # type: ignore[assignment]
            for f in done:
                yield self.result(f)

    def _died(self) -> WorkerDied:
        return WorkerDied(f"a worker process of the {self.name} job ended without its result "
                          "(killed, or out of memory)", hint="run again with fewer workers (--workers 1)")


def map_chunks(work: Callable[[T], R], jobs: Sequence[T], *, initializer: Callable[..., None],
               initargs: tuple[Any, ...] = (), workers: int = 2, parallel: bool = True, name: str = "work",
               progress: Callable[[int], None] | None = None, size: Callable[[T], int] = len) -> list[R]:
    """`work(job)` for every job, in order: in a `Pool` when `parallel` and `workers` > 1, else in this process
    (where `initializer` runs once, without the workers' set-up). `progress(size(job))` after each."""
    out: list[R] = []
    if parallel and workers > 1:
        with Pool(workers, initializer=initializer, initargs=initargs, name=name) as pool:
            for job, result in zip(jobs, pool.imap(work, jobs), strict=True):
                out.append(result)
                if progress:
                    progress(size(job))
        return out
    initializer(*initargs)
    for job in jobs:
        out.append(work(job))
        if progress:
            progress(size(job))
    return out
