"""Every route and every bad input against a real server on loopback (auth off: loopback default)."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
import zlib

import httpx
import numpy as np
import pytest

from visionloop.infer import Predictor
from visionloop.serve import Settings
from visionloop.serve.schemas import ModelOut, PredictOut
from visionloop.store import Store
from visionloop.store import models as registry

from .conftest import Server, jpeg, png


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _err(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message"} and "Traceback" not in r.text
    return body


def test_health_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["models_loaded"] == 2


def test_models_list_and_one(client):
    models = [ModelOut.model_validate(m) for m in client.get("/v1/models").json()]
    assert [(m.name, m.kind, m.serving, [v.version for v in m.versions]) for m in models] == [
        ("detect", "family", 2, [1, 2]), ("det-a", "model", 1, [1]), ("det-b", "model", 2, [2])]
    one = client.get("/v1/models/detect").json()
    assert one["task"] == "detect" and [v["model"] for v in one["versions"]] == ["det-a", "det-b"]
    v = one["versions"][0]
    assert v["classes"] == ["square", "triangle", "disc"] and v["input_size"] == [64, 64]
    assert v["stage"] == "preview" and v["dataset_version"] == "v1" and "loss" in v["metrics"] and v["loaded"]


@pytest.mark.parametrize("name", ["nope", "..", ".hidden", "a" * 65, "det-a;drop", "%2e%2e%2fblobs", "m 1"])
def test_unknown_or_escaping_names_are_404(client, name):
    body = _err(client.get(f"/v1/models/{name}"), 404)
    assert body["message"].startswith("no model") or body["message"] == "no such route"
    r = client.post(f"/v1/models/{name}/predict", content=png(), headers={"content-type": "image/png"})
    assert r.status_code == 404 and "Traceback" not in r.text


def test_path_traversal_in_version_is_404(client):
    for v in ("%2e%2e", "1..", "0x1", "-1", "99", "%2F", "%2e%2e%2f%2e%2e"):
        body = _err(client.post(f"/v1/models/detect/versions/{v}/predict", content=png(),
                                headers={"content-type": "image/png"}), 404)
        assert "version" in body["message"] or body["message"] == "no such route"
    body = _err(client.post("/v1/models/detect/versions/99/predict", content=png()), 404)
    assert body["message"] == "no version 99 of model 'detect'" and body["hint"] == "versions: 1, 2"


def test_predict_multipart_equals_the_predictor(client, project):
    r = client.post("/v1/models/detect/predict", files={"files": ("a.png", png())},
                    params={"confidence": 0.01, "max_detections": 5})
    assert r.status_code == 200
    out = PredictOut.model_validate(r.json())
    assert (out.model.name, out.model.version, out.model.model, out.model.task) == ("detect", 2, "det-b", "detect")
    (image,) = out.images
    assert (image.index, image.name, image.size.width, image.size.height) == (0, "a.png", 120, 90)
    # the oracle: the same ONNX file through infer.Predictor, the same thresholds
    with Store.open(project) as store:
        p = Predictor(store.blobs.get(registry.get(store, "det-b").export("onnx", "fp32").sha256))
    from PIL import Image

    ref = p.predict(np.asarray(Image.open(io.BytesIO(png())).convert("RGB")), conf=0.01, max_det=5)
    got = [(d.box.x0, d.box.y0, d.box.x1, d.box.y1, d.class_id, d.confidence) for d in image.predictions]
    want = [(*(round(float(v), 2) for v in b), int(c), round(float(s), 6))
            for b, s, c in zip(ref.boxes, ref.scores, ref.labels, strict=True)]
    assert got == want and len(got) == 5
    assert [d.class_ for d in image.predictions] == [p.classes[d.class_id] for d in image.predictions]
    assert all(0 <= d.box.x0 <= d.box.x1 <= 120 and 0 <= d.box.y0 <= d.box.y1 <= 90 for d in image.predictions)


def test_several_images_raw_and_json(client):
    files = [("files", ("a.png", png(seed=1))), ("files", ("b.jpg", jpeg(64, 48)))]
    out = client.post("/v1/models/det-a/predict", files=files, params={"confidence": 0.01}).json()
    assert [(i["name"], i["size"]) for i in out["images"]] == [
        ("a.png", {"width": 120, "height": 90}), ("b.jpg", {"width": 64, "height": 48})]
    assert out["model"]["version"] == 1 and out["model"]["model"] == "det-a"
    raw = client.post("/v1/models/detect/versions/1/predict", content=png(seed=1), params={"confidence": 0.01},
                      headers={"content-type": "application/octet-stream"}).json()
    assert raw["images"][0]["predictions"] == out["images"][0]["predictions"]
    b64 = base64.b64encode(png(seed=1)).decode()
    js = client.post("/v1/models/det-a/predict", json={"images": [{"base64": b64, "name": "x"},
                                                                  {"base64": "data:image/png;base64," + b64}],
                                                       "confidence": 0.01}).json()
    assert [i["name"] for i in js["images"]] == ["x", ""]
    assert js["images"][0]["predictions"] == js["images"][1]["predictions"] == out["images"][0]["predictions"]


def test_parameters(client):
    def preds(**params):
        r = client.post("/v1/models/det-a/predict", content=png(), headers={"content-type": "image/png"},
                        params=params)
        assert r.status_code == 200, r.text
        return r.json()["images"][0]["predictions"]

    many = preds(confidence=0.0, max_detections=1000)
    assert len(many) > 10
    assert preds(confidence=0.0, max_detections=3) == many[:3]
    assert all(p["confidence"] >= 0.15 for p in preds(confidence=0.15))
    only = preds(confidence=0.0, classes="disc", max_detections=1000)
    assert only and {p["class"] for p in only} == {"disc"}
    assert preds(confidence=0.0, classes="2,0", max_detections=1000) == preds(
        confidence=0.0, classes="square,disc", max_detections=1000)
    assert preds(confidence=1.0) == []
    strict = preds(confidence=0.0, iou=0.0, max_detections=1000)
    assert len(strict) < len(many)  # iou 0: no two boxes of one class overlap


@pytest.mark.parametrize(("params", "message"), [
    ({"confidence": 2}, "parameter confidence: Input should be less than or equal to 1"),
    ({"iou": -0.1}, "parameter iou: Input should be greater than or equal to 0"),
    ({"max_detections": 0}, "parameter max_detections: Input should be greater than or equal to 1"),
    ({"confidence": "high"}, "confidence: Input should be a valid number, unable to parse string as a number"),
])
def test_bad_parameters_are_422(client, params, message):
    r = client.post("/v1/models/det-a/predict", content=png(), headers={"content-type": "image/png"}, params=params)
    assert _err(r, 422)["message"] == message


def test_unknown_class_is_400(client):
    r = client.post("/v1/models/det-a/predict", content=png(), params={"classes": "cat"})
    body = _err(r, 400)
    assert body["message"] == "unknown class 'cat' in `classes`" and body["hint"] == "classes: square, triangle, disc"


def test_content_is_sniffed_not_named(client):
    ok = client.post("/v1/models/det-a/predict", files={"files": ("photo.jpg", png(), "image/jpeg")})
    assert ok.status_code == 200 and ok.json()["images"][0]["size"] == {"width": 120, "height": 90}
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 100
    body = _err(client.post("/v1/models/det-a/predict", files={"files": ("photo.jpg", pdf, "image/jpeg")}), 415)
    assert body["message"] == "image 1 (photo.jpg) is not an image this server reads: it looks like a PDF document"
    assert body["hint"] == "send JPEG, PNG, BMP, TIFF or WebP"
    gif = b"GIF89a" + b"\0" * 20
    assert "a GIF (not supported)" in _err(client.post("/v1/models/det-a/predict", content=gif), 415)["message"]
    empty = _err(client.post("/v1/models/det-a/predict", content=b""), 415)
    assert empty["message"] == "image 1 is not an image this server reads: it looks like empty"


def test_corrupt_and_truncated_images_are_400(client):
    data = png()
    corrupt = data[:40] + bytes(200) + data[240:]
    body = _err(client.post("/v1/models/det-a/predict", files={"files": ("c.png", corrupt)}), 400)
    assert body["error"] == "BadImage" and body["message"].startswith("image 1 (c.png)")
    cut = jpeg(200, 150)[:900]
    body = _err(client.post("/v1/models/det-a/predict", files={"files": ("t.jpg", cut)}), 400)
    assert body["message"] == "image 1 (t.jpg) is a truncated JPEG (no end-of-image marker after its last scan)"
    header_only = png()[:30]
    body = _err(client.post("/v1/models/det-a/predict", content=header_only), 400)
    assert body["message"] == "image 1 is a corrupt or truncated PNG: its header cannot be read"
    # the second image is bad: the whole request is refused naming it, nothing half-answered
    files = [("files", ("ok.png", png())), ("files", ("bad.png", corrupt))]
    assert "image 2 (bad.png)" in _err(client.post("/v1/models/det-a/predict", files=files), 400)["message"]


def _png_bomb(w: int, h: int) -> bytes:
    """A valid PNG of w×h black pixels in a few KB (what a decompression bomb looks like)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\0" * ((w * 3 + 1) * h), 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_decompression_bomb_is_413_before_decoding(client):
    bomb = _png_bomb(10_000, 6_000)  # 60 MP > the 50 MP default, 180 MB decoded, < 1 MB sent
    assert len(bomb) < 1_000_000
    body = _err(client.post("/v1/models/det-a/predict", files={"files": ("bomb.png", bomb)}), 413)
    assert body["message"] == ("image 1 (bomb.png) is 10000x6000 = 60,000,000 pixels, more than this server's "
                               "limit of 50,000,000")


def test_bad_requests(client):
    body = _err(client.post("/v1/models/det-a/predict", content=b"hello", headers={"content-type": "text/plain"}),
                415)
    assert body["message"] == "unsupported request content type 'text/plain'"
    body = _err(client.post("/v1/models/det-a/predict", json={"images": []}), 400)
    assert body["message"] == "no image in the request"
    body = _err(client.post("/v1/models/det-a/predict", data={"confidence": "0.5"}), 415)
    assert body["message"] == "unsupported request content type 'application/x-www-form-urlencoded'"
    assert _err(client.post("/v1/models/det-a/predict", content=b"{not json",
                            headers={"content-type": "application/json"}), 400)["message"].startswith(
        "the JSON body is malformed")
    assert _err(client.post("/v1/models/det-a/predict", json={"image": "x"}), 400)["message"] == \
        "the JSON body needs an `images` list"
    assert _err(client.post("/v1/models/det-a/predict", json={"images": [{"base64": "!!!"}]}), 400)["message"] == \
        "images[0].base64 is not valid base64"
    assert _err(client.post("/v1/models/det-a/predict", json={"images": [{"name": "x"}]}), 400)["message"] == \
        "images[0] has neither `base64` nor `url`"
    assert _err(client.get("/v1/nothing"), 404)["message"] == "no such route"
    assert _err(client.get("/v1/models/det-a/predict"), 405)["error"] == "MethodNotAllowed"


def test_urls_are_off_by_default(client):
    body = _err(client.post("/v1/models/det-a/predict", json={"images": [{"url": "http://127.0.0.1:1/a.png"}]}), 403)
    assert body["message"] == "fetching image URLs is off on this server"


@pytest.fixture(scope="module")
def image_host():
    data = png(seed=3)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/a.png":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://10.0.0.1/secret")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", data
    srv.shutdown()


def test_urls_on_the_allow_list(project, image_host):
    base, data = image_host
    with Server(project, Settings(url_allow_list=["127.0.0.1"], refresh_s=0)) as s, \
            httpx.Client(base_url=s.url, timeout=30) as c:
        by_url = c.post("/v1/models/det-a/predict", json={"images": [{"url": f"{base}/a.png"}], "confidence": 0.01})
        by_bytes = c.post("/v1/models/det-a/predict", content=data, params={"confidence": 0.01})
        assert by_url.status_code == 200 and by_url.json()["images"][0]["predictions"] == \
            by_bytes.json()["images"][0]["predictions"]
        body = _err(c.post("/v1/models/det-a/predict", json={"images": [{"url": "http://localhost/a.png"}]}), 403)
        assert body["message"] == "host 'localhost' is not on this server's URL allow-list"
        assert _err(c.post("/v1/models/det-a/predict", json={"images": [{"url": f"{base}/redirect"}]}),
                    400)["message"] == f"fetching {base}/redirect answered HTTP 302"
        assert _err(c.post("/v1/models/det-a/predict", json={"images": [{"url": "file:///etc/passwd"}]}),
                    400)["message"] == "not an http(s) URL: 'file:///etc/passwd'"


def test_limits(project):
    settings = Settings(max_body_bytes=64 * 1024, max_images=2, max_pixels=100_000, refresh_s=0)
    with Server(project, settings) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        files = [("files", (f"{i}.png", png(32, 32, seed=i))) for i in range(3)]
        assert _err(c.post("/v1/models/det-a/predict", files=files), 413)["message"] == \
            "more than 2 images in one request"
        b64 = base64.b64encode(png(32, 32)).decode()
        assert _err(c.post("/v1/models/det-a/predict", json={"images": [{"base64": b64}] * 3}), 413)["message"] == \
            "3 images in one request, at most 2"
        big = np.random.default_rng(0).integers(0, 256, 100_000).astype(np.uint8).tobytes()
        body = _err(c.post("/v1/models/det-a/predict", content=big, headers={"content-type": "image/png"}), 413)
        assert body["message"] == "the request body is 100000 bytes, more than this server's limit of 65,536"

        def chunks():
            for _ in range(20):
                yield bytes(8192)

        body = _err(c.post("/v1/models/det-a/predict", content=chunks(), headers={"content-type": "image/png"}),
                    413)  # no Content-Length: counted while streaming
        assert body["message"] == "the request body is more than this server's limit of 65,536 bytes"
        from PIL import Image

        flat = io.BytesIO()
        Image.new("RGB", (400, 300), (9, 9, 9)).save(flat, "PNG")
        body = _err(c.post("/v1/models/det-a/predict", content=flat.getvalue()), 413)
        assert body["message"] == "image 1 is 400x300 = 120,000 pixels, more than this server's limit of 100,000"
        assert c.post("/v1/models/det-a/predict", files=files[:2]).status_code == 200


def test_no_stack_traces(server, client, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.service.images, "_prepare", broken)
    r = client.post("/v1/models/det-a/predict", content=png())
    body = _err(r, 500)
    assert body["error"] == "InternalError" and "secret" not in r.text and "RuntimeError" not in r.text
    assert body["message"].startswith("internal server error (logged as ")


def test_full_queue_is_503_with_retry_after(project):
    import asyncio

    started, gate = threading.Event(), threading.Event()
    with Server(project, Settings(max_batch=1, queue_size=1, workers=1, refresh_s=0)) as s:
        batcher = next(ld.batcher for ld in s.service.pool.loaded.values() if ld.batcher.labels[0] == "det-a")
        real = batcher.run

        def held(x):
            started.set()
            gate.wait(30)
            return real(x)

        batcher.run = held

        async def go():
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as c:
                first = asyncio.ensure_future(c.post("/v1/models/det-a/predict", content=png()))
                deadline = time.monotonic() + 30
                while not started.is_set() and time.monotonic() < deadline:  # the first image runs: none waits
                    await asyncio.sleep(0.01)
                second = asyncio.ensure_future(c.post("/v1/models/det-a/predict", content=png()))
                while batcher.pending < 1 and time.monotonic() < deadline:  # the second waits: queue full
                    await asyncio.sleep(0.01)
                third = await c.post("/v1/models/det-a/predict", content=png())
                gate.set()
                return await first, await second, third

        first, second, third = asyncio.run(go())
        assert (first.status_code, second.status_code) == (200, 200)
        body = _err(third, 503)
        assert third.headers["retry-after"] == "1"
        assert body["message"] == "model det-a is busy: 1 images are waiting"
        metrics = httpx.get(s.url + "/metrics").text
        assert 'visionloop_rejected_total{model="det-a",version="1"} 1.0' in metrics
        assert 'visionloop_requests_total{code="503",model="det-a",version="1"} 1.0' in metrics


def test_metrics(client):
    client.post("/v1/models/det-b/predict", content=png())
    text = client.get("/metrics").text
    assert 'visionloop_requests_total{code="200",model="det-b",version="2"}' in text
    assert 'visionloop_request_duration_seconds_bucket{le="+Inf",model="det-b",version="2"}' in text
    assert 'visionloop_batch_size_count{model="det-b",version="2"}' in text
    assert 'visionloop_queue_depth{model="det-b",version="2"} 0.0' in text
    assert 'visionloop_http_requests_total{code="200",method="POST",route="/v1/models/{name}/predict"}' in text
    assert "visionloop_models_loaded 2.0" in text


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict",
            "/v1/models/{name}/versions/{version}/predict", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*", "application/json"} <= set(body)


def test_tiled_prediction_equals_local_tiling(client, project):
    """`tile=2x2`: the tiles go through the batcher and merge as `visionloop predict --tile 2x2` does."""
    from PIL import Image

    data = png(200, 150, seed=4)
    out = client.post("/v1/models/det-a/predict", content=data, params={"confidence": 0.01, "tile": "2x2"},
                      headers={"content-type": "image/png"}).json()
    image = out["images"][0]
    assert image["tiles"] == 4
    with Store.open(project) as store:
        p = Predictor(store.blobs.get(registry.get(store, "det-a").export("onnx", "fp32").sha256))
    ref = p.predict(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), conf=0.01, tile=(2, 2))
    want = [(*(round(float(v), 2) for v in b), int(c), round(float(s), 6))
            for b, s, c in zip(ref.boxes, ref.scores, ref.labels, strict=True)]
    got = [(d["box"]["x0"], d["box"]["y0"], d["box"]["x1"], d["box"]["y1"], d["class_id"], d["confidence"])
           for d in image["predictions"]]
    assert got == want and len(got) > 0
    body = _err(client.post("/v1/models/det-a/predict", content=data, params={"tile": "2by2"},
                            headers={"content-type": "image/png"}), 422)
    assert "tile" in body["message"]


def test_served_sessions_spin_200_us_after_a_run_then_sleep(server, project):
    """ONNX Runtime's threads wait for more work 200 µs, not its default, so the HTTP and decoding between runs
    get the core back (Settings.spin_us); 0 turns spinning off, None keeps ONNX Runtime's default."""
    from visionloop.infer.session import open_session
    from visionloop.store import Store
    from visionloop.store import models as registry

    loaded = next(ld for ld in server.service.pool.loaded.values() if ld.batcher.labels[0] == "det-a")
    sessions = [loaded.predictor.session]
    # the every-core session of a lone image, there whenever the settings ask for one (2+ cores)
    assert (loaded.batcher.solo is not None) == (server.service.settings.solo_threads() is not None)
    if loaded.batcher.solo is not None:
        sessions.append(loaded.batcher.solo.__self__.session)
    for s in sessions:
        assert s.get_session_options().get_session_config_entry("session.intra_op.spin_duration_us") == "200"
    with Store.open(project) as store:
        data = store.blobs.get(registry.get(store, "det-a").export("onnx", "fp32").sha256)
    off = open_session(data, providers=["CPUExecutionProvider"], threads=2, what="model", hint="-", spin_us=0)
    assert off.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = open_session(data, providers=["CPUExecutionProvider"], threads=2, what="model", hint="-")
    with pytest.raises(RuntimeError, match="does not have configuration"):
        default.get_session_options().get_session_config_entry("session.intra_op.spin_duration_us")
