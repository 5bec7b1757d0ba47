"""`visionloop serve --ray`: the app on a real local Ray Serve instance answers what the plain server answers."""

from __future__ import annotations

import httpx
import pytest
from vl_services import free_port

from visionloop.serve import Settings

from .conftest import Server, jpeg, png


def _same(got: dict, want: dict) -> None:
    assert [r["size"] for r in got["images"]] == [r["size"] for r in want["images"]]
    for g, w in zip(got["images"], want["images"], strict=True):
        assert len(g["predictions"]) == len(w["predictions"]) > 0
        for a, b in zip(g["predictions"], w["predictions"], strict=True):
            assert (a["class"], a["class_id"]) == (b["class"], b["class_id"])
            assert a["box"] == pytest.approx(b["box"], abs=1e-3)
            assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-3)


@pytest.mark.usefixtures("one_ray_cluster")
def test_ray_serve_matches_plain_server(project):
    """Both batchings (our engine's Batcher in each replica, then Ray Serve's @serve.batch) on one Ray."""
    ray = pytest.importorskip("ray")  # in the `test` extra: CI has it
    from ray import serve

    from visionloop.serve.ray_app import deploy

    settings = Settings(refresh_s=0, url_allow_list=[], max_batch=4, max_wait_ms=2)
    files = [("files", ("a.png", png(seed=1), "image/png")), ("files", ("b.jpg", jpeg(seed=2), "image/jpeg"))]
    params = {"confidence": 0.01, "max_detections": 5}
    with Server(project, settings) as plain, httpx.Client(base_url=plain.url, timeout=30) as c:
        want = {m: c.post(f"/v1/models/{m}/predict", files=files, params=params).json() for m in ("det-a", "det-b")}
        assert 'visionloop_batch_size_count{model="det-a"' in c.get("/metrics").text

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for batching in ("engine", "ray"):
            deploy(project, settings, replicas=2, batching=batching)
            apps = serve.status().applications
            assert apps["visionloop"].status == "RUNNING"
            deployments = apps["visionloop"].deployments
            assert set(deployments) == {"api", "model-det-a", "model-det-b"}
            assert sum(deployments["model-det-a"].replica_states.values()) == 2
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                r = c.get("/healthz")
                assert r.status_code == 200, r.text
                assert c.get("/readyz").status_code == 200
                assert [m["name"] for m in c.get("/v1/models").json()] == ["detect", "det-a", "det-b"]
                for m in ("det-a", "det-b"):
                    r = c.post(f"/v1/models/{m}/predict", files=files, params=params)
                    assert r.status_code == 200, r.text
                    got = r.json()
                    assert got["model"] == want[m]["model"]
                    _same(got, want[m])
                # the ingress ran no batch itself: inference went to the model deployments
                assert 'visionloop_batch_size_count{model="det-a"' not in c.get("/metrics").text
                r = c.post("/v1/models/nope/predict", files=files)
                assert r.status_code == 404 and r.json()["error"] == "NotFound"
    finally:
        serve.shutdown()
        ray.shutdown()
