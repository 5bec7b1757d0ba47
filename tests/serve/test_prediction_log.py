"""Prediction logging on a real server on loopback: every rule honoured exactly on a driven clock, a full queue
drops and counts without failing a request, and `visionloop predictions list/stats` read what was logged."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from typer.testing import CliRunner

from visionloop.cli.predictions import app as predictions_app
from visionloop.serve import Settings
from visionloop.serve.settings import LogRules
from visionloop.store import Store
from visionloop.store import prediction_log as plog

from .conftest import Server, png

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp()  # a minute, an hour and a day start here


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def proj(project, tmp_path):
    """A copy of the session's project per test: each test counts the rows it logged from zero."""
    return shutil.copytree(project, tmp_path / "project")


def _server(proj, rules: dict[str, LogRules], **kw) -> Server:
    return Server(proj, Settings(refresh_s=0, log_predictions=rules, **kw))


def _flush(server: Server, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while server.service.predlog.pending:
        assert time.monotonic() < deadline, "the prediction log did not drain"
        time.sleep(0.01)


def _metric(server: Server, name: str, **labels: str) -> float:
    return server.service.metrics.registry.get_sample_value(f"visionloop_prediction_log_{name}_total", labels) or 0.0


def _post(c: httpx.Client, model: str, *images: bytes, **params) -> dict:
    r = c.post(f"/v1/models/{model}/predict", files=[("files", (f"{i}.png", d)) for i, d in enumerate(images)],
               params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_logging_is_off_by_default(server):
    assert server.service.predlog is None and Settings().log_predictions == {}


def test_rate_one_logs_every_image_exactly(proj):
    sent = [png(seed=s) for s in range(5)]
    with _server(proj, {"*": LogRules()}) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        s.service.predlog.clock = Clock()
        answers = [_post(c, "detect", sent[0], sent[1], confidence=0.01)]  # two images in one request
        answers += [_post(c, "detect", d, confidence=0.01) for d in sent[2:4]]
        answers.append(_post(c, "det-a", sent[4], confidence=0.01))
        _flush(s)
        assert _metric(s, "written", model="detect", version="2") == 4
        assert _metric(s, "written", model="det-a", version="1") == 1
    with Store.open(proj) as store:
        rows = plog.query(store)
        served = [im for a in answers for im in a["images"]]
        assert len(rows) == 5
        assert [(r.model, r.model_name, r.model_version, r.task) for r in rows] == \
            [("detect", "det-b", 2, "detect")] * 4 + [("det-a", "det-a", 1, "detect")]
        for r, data, im in zip(rows, sent, served, strict=True):
            assert store.blobs.get(r.image_sha256) == data
            assert (r.width, r.height, r.image_name) == (120, 90, im["name"])
            assert r.predictions == im["predictions"] and r.created_at.timestamp() == T0
            confs = [p["confidence"] for p in im["predictions"]]
            assert r.max_confidence == (max(confs) if confs else None)


def test_class_caps_and_per_minute_limit_exact(proj):
    """det-a: at most 2 images showing a square per hour, 3 images a minute in all; det-b: switched off."""
    rules = {"det-a": LogRules(class_caps={"square": 2}, cap_window="hour", per_minute=3),
             "det-b": LogRules(rate=0.0)}
    clock = Clock()
    with _server(proj, rules) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        s.service.predlog.clock = clock

        def send(cls: str, n: int, seed: int = 0) -> None:
            for k in range(n):
                a = _post(c, "det-a", png(seed=seed + k), confidence=0.0001, classes=cls, max_detections=3)
                classes = {p["class"] for p in a["images"][0]["predictions"]}
                assert classes == {cls}, "the test needs one class per image: lower the confidence"

        send("square", 3)                # minute 0: squares 1, 2 logged; the 3rd is over the square cap
        send("disc", 2, seed=10)         # minute 0: disc 1 logged (3 in this minute), disc 2 over the minute limit
        clock.t += 60
        send("disc", 4, seed=20)         # minute 1: 3 discs logged, the 4th over the limit
        send("square", 1, seed=30)       # minute 1: the square cap (per hour) is still full
        clock.t += 3600
        send("square", 3, seed=40)       # the next hour: squares 1, 2 logged; 3rd over the cap
        _post(c, "det-b", png(seed=50))  # rate 0: never logged
        _flush(s)
        assert _metric(s, "written", model="det-a", version="1") == 8
        assert _metric(s, "skipped", model="det-a", version="1", reason="class_cap") == 3
        assert _metric(s, "skipped", model="det-a", version="1", reason="limit") == 2
        assert _metric(s, "skipped", model="det-b", version="2", reason="rate") == 1
    with Store.open(proj) as store:
        rows = plog.query(store)
        assert [(int(r.created_at.timestamp() - T0), r.classes) for r in rows] == \
            [(0, ["square"])] * 2 + [(0, ["disc"])] + [(60, ["disc"])] * 3 + [(3660, ["square"])] * 2
        assert {r.model for r in rows} == {"det-a"}


def test_below_confidence_rule(proj):
    images = [png(seed=s) for s in range(8)]
    with _server(proj, {"detect": LogRules(below=0.0)}) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        # det-b answers like detect (the same version) and has no rules: what the tops are, unlogged
        tops = [max((p["confidence"] for p in _post(c, "det-b", d, confidence=0.001)["images"][0]["predictions"]),
                    default=None) for d in images]
        assert None not in tops and len(set(tops)) == len(tops)
        below = sorted(tops)[3] if len(tops) > 3 else 1.0  # 3 images under it, 5 at or over it
        s.service.predlog.sampler.rules["detect"] = LogRules(below=below)
        for d in images:
            _post(c, "detect", d, confidence=0.001)
        _flush(s)
        assert _metric(s, "skipped", model="detect", version="2", reason="confident") == 5
        assert _metric(s, "skipped", model="det-b", version="2", reason="confident") == 0
    with Store.open(proj) as store:
        rows = plog.query(store)
        assert sorted(r.max_confidence for r in rows) == sorted(t for t in tops if t < below)
        assert [store.blobs.get(r.image_sha256) for r in rows] == [d for d, t in zip(images, tops, strict=True) if t < below]


def test_full_queue_drops_and_counts_without_failing_requests(proj):
    entered, release = threading.Event(), threading.Event()
    with _server(proj, {"*": LogRules()}, log_queue=2) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        logger = s.service.predlog
        write = logger.write

        def stalled(store, entries):  # the store is slow: the writer sits on its first batch
            entered.set()
            assert release.wait(30)
            return write(store, entries)

        logger.write = stalled
        _post(c, "detect", png(seed=0))
        assert entered.wait(10)                     # image 1 is being written; the queue is empty
        t0 = time.perf_counter()
        for k in range(1, 7):                       # images 2, 3 queue; 4..7 are dropped
            _post(c, "detect", png(seed=k))
        assert time.perf_counter() - t0 < 10        # no request waited for the stalled writer
        assert _metric(s, "dropped", model="detect", version="2") == 4
        text = c.get("/metrics").text
        assert 'visionloop_prediction_log_dropped_total{model="detect",version="2"} 4.0' in text
        release.set()
        _flush(s)
        assert _metric(s, "written", model="detect", version="2") == 3
    with Store.open(proj) as store:
        assert [store.blobs.get(r.image_sha256) for r in plog.query(store)] == [png(seed=k) for k in range(3)]


def test_cli_list_and_stats_on_logged_rows(proj, tmp_path, monkeypatch):
    from visionloop.cli.console import console

    monkeypatch.setattr(console, "width", 160)
    clock = Clock(T0 + 15 * 60)  # 10:15, then 10:45, then 12:05
    with _server(proj, {"*": LogRules()}) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        s.service.predlog.clock = clock
        answers = [_post(c, "detect", png(seed=0), confidence=0.001, max_detections=4)]
        clock.t += 30 * 60
        answers.append(_post(c, "detect", png(seed=1), confidence=0.99))  # no prediction
        clock.t += 80 * 60
        answers.append(_post(c, "det-a", png(seed=2), confidence=0.001, max_detections=2))
        _flush(s)
    preds = [a["images"][0]["predictions"] for a in answers]
    assert [len(p) for p in preds] == [4, 0, 2]
    run = CliRunner().invoke
    out = run(predictions_app, ["list", "-p", str(proj), "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert [r["id"] for r in listed] == [3, 2, 1] and [r["model_version"] for r in listed] == [1, 2, 2]
    assert [r["predictions"] for r in listed] == preds[::-1]
    assert listed[2]["created_at"] == "2026-12-01T10:15:00+00:00"
    top0 = max(p["confidence"] for p in preds[0])
    out = run(predictions_app, ["list", "-p", str(proj), "--json", "--below", str(top0)])
    assert [r["id"] for r in json.loads(out.stdout)] == ([3, 2] if max(p["confidence"] for p in preds[2]) < top0
                                                          else [2])
    out = run(predictions_app, ["list", "-p", str(proj), "--json", "--model", "det-a"])
    assert [r["id"] for r in json.loads(out.stdout)] == [3]
    out = run(predictions_app, ["list", "-p", str(proj), "--json", "--since", "2026-12-01T10:30",
                                "--until", "2026-12-01T12:00"])
    assert [r["id"] for r in json.loads(out.stdout)] == [2]
    out = run(predictions_app, ["list", "-p", str(proj)])
    assert out.exit_code == 0 and "det-b v2" in out.stdout and "det-a v1" in out.stdout

    out = run(predictions_app, ["stats", "-p", str(proj), "--json", "--bins", "5"])
    assert out.exit_code == 0, out.output
    st = json.loads(out.stdout)
    assert (st["images"], st["predictions"], st["no_prediction"]) == (3, 6, 1)
    assert st["volume"] == {"2026-12-01T10:00:00+00:00": 2, "2026-12-01T11:00:00+00:00": 0,
                            "2026-12-01T12:00:00+00:00": 1}
    assert st["by_model"] == {"det-a v1": 1, "det-b v2": 2}
    confs = [p["confidence"] for ps in preds for p in ps]
    assert st["confidence_hist"] == [sum(min(4, int(x * 5)) == b for x in confs) for b in range(5)]
    assert sum(st["top_confidence_hist"]) == 2
    mix = {}
    for p in preds[0]:
        mix[p["class"]] = mix.get(p["class"], 0) + 1
    assert st["class_mix"]["2026-12-01T10:00:00+00:00"] == dict(sorted(mix.items()))
    out = run(predictions_app, ["stats", "-p", str(proj), "--bucket", "day"])
    assert out.exit_code == 0 and "3 images, 6 predictions, 1 without a prediction" in out.stdout
    for name in ("drift.png", "drift.html"):
        out = run(predictions_app, ["stats", "-p", str(proj), "--plot", str(tmp_path / name)])
        assert out.exit_code == 0, out.output
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "drift.html").read_text()
    assert "data:image/png;base64," in page and "3 images, 6 predictions" in page


def test_logged_rows_carry_the_embedders_vector(proj, tmp_path):
    """With an embedder, the writer thread stores each kept image's vector: the embedder's own output on it."""
    import numpy as np
    from PIL import Image

    from visionloop.infer.embed import OnnxEmbedder
    from visionloop.models.embedder import Embedder, export_embedder

    onnx_file = tmp_path / "embedder.onnx"
    onnx_file.write_bytes(export_embedder(Embedder.create()))
    sent = [png(seed=s) for s in (60, 61)]
    with _server(proj, {"*": LogRules()}, log_embedder=str(onnx_file)) as s, \
            httpx.Client(base_url=s.url, timeout=30) as c:
        _post(c, "detect", *sent, confidence=0.01)
        _flush(s)
        name = s.service.predlog.embedder[0]
    enc = OnnxEmbedder(onnx_file)
    with Store.open(proj) as store:
        rows = plog.query(store)
        assert [r.has_embedding for r in rows] == [True, True]
        got = plog.embeddings(store, [r.id for r in rows])
    import io

    for r, data in zip(rows, sent, strict=True):
        want = enc.embed([np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))])[0]
        model, vec = got[r.id]
        assert model == name and name.startswith("onnx:embedder.onnx@")
        assert vec.shape == want.shape == (enc.session.get_outputs()[0].shape[-1],)
        np.testing.assert_allclose(vec, want, rtol=0, atol=1e-6)


def test_an_embedder_file_that_is_not_there_is_refused(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is neither auto, off nor an ONNX embedder file"):
        Settings(log_embedder=str(tmp_path / "nope.onnx"))
