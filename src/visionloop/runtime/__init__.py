"""One worker runtime for every bulk job: a process pool with one start-method policy, per-worker set-up,
bounded work in flight, Ctrl-C handling and no orphan workers; and forked parts for closures."""

from visionloop.runtime.fork import PartFailed, run_forked
from visionloop.runtime.pool import Pool, WorkerDied, available_workers, can_fork, map_chunks, start_context

__all__ = ["PartFailed", "Pool", "WorkerDied", "available_workers", "can_fork", "map_chunks", "run_forked", "start_context"]
