"""Serve settings: the measured batching default (see Settings' comment and bench/serve.py --sweep)."""

from visionloop.serve.settings import Settings


def test_batching_is_off_on_cpu_when_each_inference_thread_has_one_ort_thread(monkeypatch):
    assert Settings(workers=2, threads=1).batch_limit() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # the default: one inference thread per core, one ORT thread each
    assert (Settings().inference_workers(), Settings().ort_threads(), Settings().batch_limit()) == (2, 1, 1)
    monkeypatch.setattr("os.cpu_count", lambda: 8)  # at most 4 inference threads: 2 ORT threads each, batching on
    assert (Settings().inference_workers(), Settings().ort_threads(), Settings().batch_limit()) == (4, 2, 4)


def test_batching_up_to_4_when_a_session_has_threads_to_fill_or_on_a_gpu():
    assert Settings(workers=1, threads=2).batch_limit() == 4
    assert Settings(device="cuda").batch_limit() == 4


def test_an_explicit_max_batch_wins():
    assert Settings(workers=2, threads=1, max_batch=8).batch_limit() == 8
    assert Settings(device="cuda", max_batch=1).batch_limit() == 1


def test_solo_session_only_on_cpu_with_one_ort_thread_per_worker():
    assert Settings(workers=2, threads=1).solo_threads() == 2
    assert Settings(workers=2, threads=1, solo=False).solo_threads() is None
    assert Settings(workers=1, threads=2).solo_threads() is None
    assert Settings(workers=2, threads=2).solo_threads() is None
    assert Settings(device="cuda").solo_threads() is None


def test_a_lone_image_runs_on_the_solo_session_and_busy_ones_on_the_per_core_sessions():
    import asyncio
    import threading
    import time

    import numpy as np

    from visionloop.serve.engine import Batcher

    used: list[str] = []
    gate = threading.Event()

    def run(x):
        used.append("run")
        gate.wait(5)
        return [x.sum(axis=(1, 2, 3))]

    def solo(x):
        used.append("solo")
        gate.wait(5)
        return [x.sum(axis=(1, 2, 3))]

    async def main():
        b = Batcher(run, max_batch=1, max_wait_ms=0, queue_size=8, workers=2, solo=solo)
        gate.set()
        alone = await b.submit(np.ones((3, 2, 2), np.float32))
        assert float(alone.outputs[0]) == 12.0 and used == ["solo"]
        used.clear()
        gate.clear()
        busy = [asyncio.ensure_future(b.submit(np.full((3, 2, 2), i, np.float32))) for i in range(4)]
        await asyncio.sleep(0.05)  # both workers hold an image; two wait
        time.sleep(0.01)
        assert used == ["run", "run"]  # others were waiting: the per-core sessions, one image on each
        gate.set()
        got = await asyncio.gather(*busy)
        assert [float(r.outputs[0]) for r in got] == [0.0, 12.0, 24.0, 36.0]
        await b.close()

    asyncio.run(main())


def test_without_batching_an_image_is_decoded_inferred_and_answered_in_one_trip_to_an_inference_thread():
    import asyncio
    import threading

    import numpy as np
    import pytest

    from visionloop.serve.engine import Batcher
    from visionloop.serve.errors import BadImage

    threads: dict[str, int] = {}

    def run(x):
        threads["run"] = threading.get_ident()
        return [x.sum(axis=(1, 2, 3)), x.max(axis=(1, 2, 3))]

    def prepare(value):
        def f():
            threads["prepare"] = threading.get_ident()
            if value < 0:
                raise BadImage("image 1 cannot be decoded: the file is corrupt")
            return np.full((3, 2, 2), value, np.float32), f"ctx{value}"
        return f

    def finish(outs, ctx):
        threads["finish"] = threading.get_ident()
        return ctx, [float(o) for o in outs]

    async def main():
        assert Batcher(run, max_batch=1, max_wait_ms=0, queue_size=8).whole
        assert not Batcher(run, max_batch=4, max_wait_ms=0, queue_size=8).whole
        b = Batcher(run, max_batch=1, max_wait_ms=0, queue_size=8, workers=2)
        res = await b.submit_whole(prepare(2.0), finish)
        assert res.answer == ("ctx2.0", [24.0, 2.0]) and res.batch == 1
        assert threads["prepare"] == threads["run"] == threads["finish"] != threading.get_ident()
        # a corrupt image fails its own request; the next one is served
        bad = asyncio.ensure_future(b.submit_whole(prepare(-1.0), finish))
        good = asyncio.ensure_future(b.submit_whole(prepare(1.0), finish))
        with pytest.raises(BadImage, match="corrupt"):
            await bad
        assert (await good).answer == ("ctx1.0", [12.0, 1.0])
        assert b.pending == 0
        await b.close()

    asyncio.run(main())
