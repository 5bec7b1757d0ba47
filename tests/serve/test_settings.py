"""Serve settings: the measured batching default (see Settings' comment and bench/serve.py --sweep)."""

from visionloop.serve.settings import Settings


def test_batching_is_off_on_cpu_when_each_inference_thread_has_one_ort_thread():
    assert Settings(workers=2, threads=1).batch_limit() == 1
    assert Settings(workers=2).batch_limit() == (1 if Settings(workers=2).ort_threads() == 1 else 4)


def test_batching_up_to_4_when_a_session_has_threads_to_fill_or_on_a_gpu():
    assert Settings(workers=1, threads=2).batch_limit() == 4
    assert Settings(device="cuda").batch_limit() == 4


def test_an_explicit_max_batch_wins():
    assert Settings(workers=2, threads=1, max_batch=8).batch_limit() == 8
    assert Settings(device="cuda", max_batch=1).batch_limit() == 1
