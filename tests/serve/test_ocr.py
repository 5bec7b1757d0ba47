"""The gallery's OCR pipeline (text-ocr: PP-OCRv6 from the rapidocr wheel) served over HTTP like any model.

The image is text drawn by PIL in DejaVu Sans (the font matplotlib ships), so the strings and where they lie
(PIL's own `textbbox`) are known independently of the model."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from visionloop.serve import Settings
from visionloop.serve.schemas import PredictOut

from .conftest import Server, png

#: what is drawn, and where (top-left of the text anchor)
LINES = [("INVOICE 2048", (30, 30)), ("Total 31.50 EUR", (30, 150))]


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 720×260 white image with LINES in black 40 px DejaVu Sans; each line's ink bbox (x0, y0, x1, y1)."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf",
                                           "DejaVuSans.ttf"), 40)
    im = Image.new("RGB", (720, 260), "white")
    draw = ImageDraw.Draw(im)
    boxes = []
    for text, xy in LINES:
        draw.text(xy, text, fill="black", font=font)
        boxes.append(draw.textbbox(xy, text, font=font))
    return np.asarray(im), boxes


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def ocr_project(tmp_path_factory) -> Path:
    from visionloop import gallery
    from visionloop.store import Store

    root = tmp_path_factory.mktemp("ocr") / "project"
    with Store.init(root) as store:
        gallery.add(store, "text-ocr")
    return root


@pytest.fixture(scope="module")
def client(ocr_project) -> Iterator[httpx.Client]:
    # 1 worker × 1 ONNX Runtime thread: the in-process oracle below runs the same configuration
    with Server(ocr_project, Settings(refresh_s=0, url_allow_list=[], workers=1, threads=1)) as s, \
            httpx.Client(base_url=s.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def local(ocr_project):
    """The same registry files run in this process (what `visionloop predict` runs)."""
    from visionloop.infer.ocr import OcrPredictor
    from visionloop.store import Store
    from visionloop.store import models as registry

    with Store.open(ocr_project) as store:
        info = registry.get(store, "text-ocr")
        files = {e.format: store.blobs.get(e.sha256) for e in info.exports}
    return OcrPredictor(files["onnx"], files["onnx-rec"], files["onnx-cls"], threads=1)


def _video(rgb: np.ndarray, frames: int, folder: Path) -> bytes:
    """An MJPEG AVI of `frames` copies of `rgb` at 10 fps (OpenCV's writer)."""
    path = folder / "v.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (rgb.shape[1], rgb.shape[0]))
    for _ in range(frames):
        out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out.release()
    return path.read_bytes()


def _err(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message"} and "Traceback" not in r.text
    return body


def _inside(poly: list[list[float]], box: tuple[int, int, int, int]) -> bool:
    contour = np.asarray(poly, np.float32).reshape(-1, 1, 2)
    x0, y0, x1, y1 = box
    return all(cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0
               for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def test_api_reads_the_rendered_lines_with_polygons_around_them(client, rendered):
    rgb, ink = rendered
    r = client.post("/v1/models/text-ocr/predict", files={"files": ("invoice.png", _png(rgb), "image/png")})
    assert r.status_code == 200, r.text
    out = PredictOut.model_validate(r.json())  # the documented schema
    assert (out.model.name, out.model.task, out.model.stage) == ("text-ocr", "ocr", "ga")
    image = r.json()["images"][0]
    assert image["size"] == {"width": 720, "height": 260} and image["name"] == "invoice.png"
    preds = image["predictions"]
    assert [p["text"] for p in preds] == [t for t, _ in LINES]
    for p, box in zip(preds, ink, strict=True):
        assert (p["class"], p["class_id"]) == ("text", 0) and p["confidence"] > 0.9
        assert len(p["polygon"]) == 4 and _inside(p["polygon"], box), (p["polygon"], box)
        xs, ys = [q[0] for q in p["polygon"]], [q[1] for q in p["polygon"]]
        assert p["box"] == {"x0": min(xs), "y0": min(ys), "x1": max(xs), "y1": max(ys)}
        # tight: no more than 12 px of margin around the ink on any side
        assert box[0] - p["box"]["x0"] <= 12 and p["box"]["x1"] - box[2] <= 12
        assert box[1] - p["box"]["y0"] <= 12 and p["box"]["y1"] - box[3] <= 12


def test_api_equals_in_process_prediction(client, rendered, local):
    """Same registry files, same decode (PNG: lossless), same threads: identical lines, polygons and scores,
    through the plain route, the versions route and a JSON base64 body alike."""
    rgb, _ = rendered
    data = _png(rgb)
    for confidence in (0.25, 0.999):
        want = local.predict(rgb, conf=confidence).to_json()["detections"]
        version = client.get("/v1/models/text-ocr").json()["serving"]
        answers = [
            client.post("/v1/models/text-ocr/predict", content=data, params={"confidence": confidence}),
            client.post(f"/v1/models/text-ocr/versions/{version}/predict", content=data,
                        params={"confidence": confidence}),
            client.post("/v1/models/text-ocr/predict",
                        json={"images": [{"base64": base64.b64encode(data).decode()}], "confidence": confidence}),
        ]
        for r in answers:
            assert r.status_code == 200, r.text
            got = r.json()["images"][0]["predictions"]
            assert [(g["text"], g["polygon"], g["confidence"], [g["box"][k] for k in ("x0", "y0", "x1", "y1")])
                    for g in got] == [(w["text"], w["polygon"], w["score"], w["box"]) for w in want]
    # a threshold above every line's score: nothing is read, not a wrong string
    assert client.post("/v1/models/text-ocr/predict", content=data,
                       params={"confidence": 1.0}).json()["images"][0]["predictions"] == []


def test_several_images_max_detections_and_classes(client, rendered):
    rgb, _ = rendered
    blank = np.full((120, 200, 3), 255, np.uint8)
    files = [("files", ("a.png", _png(rgb))), ("files", ("blank.png", _png(blank)))]
    out = client.post("/v1/models/text-ocr/predict", files=files, params={"max_detections": 1, "classes": "text"})
    assert out.status_code == 200, out.text
    images = out.json()["images"]
    assert [i["name"] for i in images] == ["a.png", "blank.png"]
    assert [p["text"] for p in images[0]["predictions"]] == ["INVOICE 2048"]  # reading order: top line first
    assert images[1]["predictions"] == [] and images[1]["size"] == {"width": 200, "height": 120}


def test_model_listing_and_openapi(client, rendered):
    client.post("/v1/models/text-ocr/predict", content=_png(rendered[0]))
    models = client.get("/v1/models").json()
    # the model, and the `ocr` task family (its ga model) as for every task
    assert [(m["name"], m["kind"], m["task"]) for m in models] == [("ocr", "family", "ocr"),
                                                                    ("text-ocr", "model", "ocr")]
    assert models[1]["versions"][0]["loaded"] is True and models[1]["versions"][0]["classes"] == ["text"]
    family = client.post("/v1/models/ocr/predict", content=_png(rendered[0])).json()
    assert family["model"]["model"] == "text-ocr"
    assert [p["text"] for p in family["images"][0]["predictions"]] == [t for t, _ in LINES]
    spec = client.get("/openapi.json").json()
    props = spec["components"]["schemas"]["PredictionOut"]["properties"]
    assert {"text", "polygon", "box", "class", "confidence"} <= set(props)
    assert "OCR" in props["text"]["description"] and "4 corners" in props["polygon"]["description"]
    metrics = client.get("/metrics").text
    assert 'visionloop_batch_size_count{model="text-ocr"' in metrics


def test_bad_inputs_are_clear_4xx(client):
    corrupt = png()[:40] + bytes(200) + png()[240:]
    body = _err(client.post("/v1/models/text-ocr/predict", files={"files": ("c.png", corrupt)}), 400)
    assert body["error"] == "BadImage" and body["message"].startswith("image 1 (c.png)")
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 100
    body = _err(client.post("/v1/models/text-ocr/predict", files={"files": ("scan.png", pdf, "image/png")}), 415)
    assert body["message"] == "image 1 (scan.png) is not an image this server reads: it looks like a PDF document"
    body = _err(client.post("/v1/models/text-ocr/predict", content=png(), params={"tile": "2x2"}), 400)
    assert body["message"] == "tiled prediction is for detection models, not ocr"
    body = _err(client.post("/v1/models/text-ocr/predict", content=png(), params={"classes": "face"}), 400)
    assert body["message"] == "unknown class 'face' in `classes`" and body["hint"] == "classes: text"
    body = _err(client.post("/v1/models/text-ocr/versions/99/predict", content=png()), 404)
    assert body["message"] == "no version 99 of model 'text-ocr'"
    _err(client.post("/v1/models/text-ocr/predict", content=png(), params={"confidence": 2}), 422)
    body = _err(client.post("/v1/models/text-ocr/predict", json={"images": []}), 400)
    assert body["message"] == "no image in the request"


def test_ocr_video_job_reads_each_sampled_frame(client, rendered, tmp_path):
    """Video goes through the same runner: each sampled frame reads like the image alone."""
    import time

    r = client.post("/v1/models/text-ocr/predict/video", content=_video(rendered[0], 3, tmp_path),
                    headers={"content-type": "video/x-msvideo"}, params={"every_ms": 200})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while (job := client.get(f"/v1/jobs/{r.json()['id']}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert [f["index"] for f in job["frames"]] == [0, 2] and job["tracks"] == []
    for f in job["frames"]:
        assert [p["text"] for p in f["predictions"]] == [t for t, _ in LINES]


def test_catalog_needs_every_part_of_a_pipeline(ocr_project):
    """A pipeline missing its recogniser is not servable (not half-served): the catalog leaves it out."""
    from dataclasses import replace

    from visionloop.serve import catalog as cat
    from visionloop.store import Store
    from visionloop.store import models as registry

    with Store.open(ocr_project) as store:
        info = registry.get(store, "text-ocr")
    assert cat.kind(info.task) == "pipeline" and cat.kind("detect") == "graph"
    assert sorted(cat.parts(info)) == ["onnx", "onnx-cls", "onnx-rec"]
    no_rec = replace(info, exports=[e for e in info.exports if e.format != "onnx-rec"])
    assert cat.parts(no_rec) is None
    no_cls = replace(info, exports=[e for e in info.exports if e.format != "onnx-cls"])
    assert sorted(cat.parts(no_cls)) == ["onnx", "onnx-rec"]
    assert cat.key_of(cat.parts(info)) != cat.key_of(cat.parts(no_cls)) != info.export("onnx").sha256


@pytest.mark.usefixtures("one_ray_cluster")
def test_ray_serve_runs_ocr_in_its_own_deployment(ocr_project, client, rendered, tmp_path):
    """`serve --ray`: the pipeline gets a `model-text-ocr` deployment (2 replicas) like a detector; the ingress
    loads none of its files and answers what the plain server answers, images and video alike."""
    ray = pytest.importorskip("ray")
    import socket
    import time

    from ray import serve

    from visionloop.serve.ray_app import deploy

    data = _png(rendered[0])
    want = client.post("/v1/models/text-ocr/predict", content=data).json()["images"][0]["predictions"]
    assert [p["text"] for p in want] == [t for t, _ in LINES]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deploy(ocr_project, Settings(refresh_s=0, url_allow_list=[], workers=1, threads=1), replicas=2)
        app = serve.status().applications["visionloop"]
        assert app.status == "RUNNING" and set(app.deployments) == {"api", "model-text-ocr"}
        assert sum(app.deployments["model-text-ocr"].replica_states.values()) == 2
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            # two images of one request go out at once (to either replica): each the plain server's answer
            r = c.post("/v1/models/text-ocr/predict", files=[("files", ("a.png", data)), ("files", ("b.png", data))])
            assert r.status_code == 200, r.text
            assert [i["predictions"] for i in r.json()["images"]] == [want, want]
            assert _err(c.post("/v1/models/text-ocr/predict", content=png(), params={"tile": "2x2"}), 400)
            body = _err(c.post("/v1/models/text-ocr/predict", content=png(), params={"classes": "face"}), 400)
            assert body["hint"] == "classes: text"  # the classes known without loading the model
            # the ingress ran no OCR itself: no inference of text-ocr in its metrics
            assert 'visionloop_batch_size_count{model="text-ocr"' not in c.get("/metrics").text
            r = c.post("/v1/models/text-ocr/predict/video", content=_video(rendered[0], 2, tmp_path),
                       headers={"content-type": "video/x-msvideo"}, params={"every_ms": 100})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 60
            while (job := c.get(f"/v1/jobs/{r.json()['id']}").json())["status"] not in ("done", "failed"):
                assert time.monotonic() < deadline, job
                time.sleep(0.1)
            assert job["status"] == "done", job
            assert [[p["text"] for p in f["predictions"]] for f in job["frames"]] == [[t for t, _ in LINES]] * 2
    finally:
        serve.shutdown()
        ray.shutdown()


def test_pipeline_runner_bounds_its_queue_and_never_shares_a_predictor():
    """A full queue is a 503 with Retry-After at once; a predictor never runs two images at once (rapidocr keeps
    per-call state), while the two predictors do run side by side."""
    import asyncio
    import threading
    import time

    from visionloop.serve.engine import PipelineRunner
    from visionloop.serve.errors import RetryLater

    class Slow:
        def __init__(self) -> None:
            self.busy = threading.Lock()
            self.overlapped = False
            self.calls = 0

        def predict(self, rgb, **kw):
            if not self.busy.acquire(blocking=False):
                self.overlapped = True
                self.busy.acquire()
            try:
                self.calls += 1
                time.sleep(0.05)
                return (int(rgb[0, 0, 0]), kw)
            finally:
                self.busy.release()

    async def main():
        preds = [Slow(), Slow()]
        runner = PipelineRunner(preds, queue_size=3, retry_after_s=2, labels=("m", "1"))
        imgs = [np.full((2, 2, 3), i, np.uint8) for i in range(8)]
        tasks = [asyncio.ensure_future(runner.submit(x, conf=0.5)) for x in imgs]
        got = await asyncio.gather(*tasks, return_exceptions=True)
        await runner.close()
        return preds, got

    preds, got = asyncio.run(main())
    ok = [g for g in got if not isinstance(g, Exception)]
    refused = [g for g in got if isinstance(g, RetryLater)]
    assert len(ok) == 3 and len(refused) == 5  # 3 queued before the workers took any: the rest refused at once
    assert [r.prediction for r in ok] == [(i, {"conf": 0.5}) for i in range(3)]
    assert refused[0].status == 503 and refused[0].headers == {"Retry-After": "2"}
    assert refused[0].message == "model m is busy: 3 images are waiting"
    assert sum(p.calls for p in preds) == 3 and not any(p.overlapped for p in preds)
    assert all(p.calls for p in preds)  # both workers took images
