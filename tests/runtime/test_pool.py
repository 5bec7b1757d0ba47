"""The worker runtime: ordered and unordered results with bounded work in flight, a dead worker is an error
(not a hang), Ctrl-C / errors terminate the workers, and workers never outlive a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from visionloop.runtime import Pool, WorkerDied, run_forked

from .procs import alive, gone_within, wait_for_descendants

_STATE: dict[str, int] = {}


def _init(offset: int) -> None:
    _STATE["offset"] = offset


def _add(x: int) -> int:
    return x + _STATE["offset"]


def _slow_inverse_order(x: int) -> int:
    time.sleep(0.05 * (4 - x))
    return x


def _die(x: int) -> int:
    if x == 3:
        os._exit(9)
    return x


def _pid(_: int) -> int:
    return os.getpid()


def test_imap_ordered_with_initializer():
    with Pool(2, initializer=_init, initargs=(100,)) as pool:
        assert list(pool.imap(_add, range(20), window=3)) == [100 + i for i in range(20)]


def test_imap_unordered_returns_every_result_once():
    with Pool(2) as pool:
        out = list(pool.imap(_slow_inverse_order, range(5), ordered=False, window=5))
    assert sorted(out) == [0, 1, 2, 3, 4]


def test_imap_keeps_at_most_window_in_flight():
    consumed = []

    def items():
        for i in range(10):
            consumed.append(i)
            yield i

    with Pool(1) as pool:
        results = pool.imap(_add_one_slow, items(), window=2)
        first = next(results)
        assert first == 1
        assert len(consumed) <= 3  # the window, plus the one that made room
        assert list(results) == list(range(2, 11))


def _add_one_slow(x: int) -> int:
    time.sleep(0.01)
    return x + 1


def test_a_dead_worker_is_an_error_naming_the_job():
    with pytest.raises(WorkerDied, match="the hashing job"), Pool(2, name="hashing") as pool:
        list(pool.imap(_die, range(8)))


def test_an_error_terminates_the_workers():
    pool = Pool(2)
    pids = set(pool.imap(_pid, range(6)))
    with pytest.raises(RuntimeError), pool:
        raise RuntimeError("stop")
    time.sleep(0.1)
    for pid in pids:
        assert not alive(pid), pid


def test_the_start_method_is_fork_while_single_threaded_else_forkserver():
    """threading's threads and `_thread`'s alike (a forked child of an xdist worker, whose receiver thread
    threading does not see, hung here)."""
    # in a fresh interpreter: a test runner's own threads would decide it here
    code = textwrap.dedent("""
        import threading
        from visionloop.runtime.pool import start_context
        first = start_context().get_start_method()
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        second = start_context().get_start_method()
        stop.set()
        t.join()
        import _thread, time
        def receive():
            time.sleep(2)
        _thread.start_new_thread(receive, ())  # as execnet starts its receiver: invisible to threading
        time.sleep(0.2)
        third = start_context().get_start_method()
        print(first, second, third)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["fork", "forkserver", "forkserver"]


def test_forked_parts_keep_order_and_report_failures():
    base = 7  # a closure: forked children inherit it, nothing is pickled on the way in
    assert run_forked([1, 2, 3], lambda p: p * base) == [7, 14, 21]
    from visionloop.runtime import PartFailed

    with pytest.raises(PartFailed, match="part 2 of 3: ValueError: bad"):
        run_forked([1, 2, 3], lambda p: (_ for _ in ()).throw(ValueError("bad")) if p == 2 else p)


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    script = textwrap.dedent("""
        import os, sys, time
        from visionloop.runtime import Pool

        def sleep_and_pid(_):
            time.sleep(60)

        if __name__ == "__main__":
            pool = Pool(2)
            futures = [pool.submit(sleep_and_pid, i) for i in range(2)]
            print("ready", flush=True)
            time.sleep(60)
    """)
    (tmp_path / "parent.py").write_text(script)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        workers = wait_for_descendants(proc.pid, 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(workers) >= 2
    assert gone_within(workers, 2.0) == []


def test_forks_after_opencv_ran_its_thread_pool_do_not_hang():
    # once the parent ran a parallel OpenCV call, a forked child touching OpenCV's pool (worker_setup's
    # cv2.setNumThreads, or any resize) waited forever on the parent's pool threads: a hung CI worker
    script = textwrap.dedent("""
        import numpy as np, cv2
        from visionloop.runtime import Pool, run_forked

        a = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
        for _ in range(10):
            cv2.GaussianBlur(a, (15, 15), 3)
        assert cv2.getNumThreads() > 1

        def blur(p):
            return int(cv2.GaussianBlur(a, (15, 15), 3)[p, p, 0]) * 0 + p

        print(run_forked([1, 2, 3], blur))
        with Pool(2) as pool:
            print(list(pool.imap(abs, [-1, -2, -3])))
        print(cv2.getNumThreads() > 1)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OPENCV_FOR_THREADS_NUM": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:3] == ["[1, 2, 3]", "[1, 2, 3]", "True"]
