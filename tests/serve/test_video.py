"""POST /v1/models/{name}/predict/video → a job; GET /v1/jobs/{id} → per-frame predictions."""

from __future__ import annotations

import time

import cv2
import httpx
import numpy as np
import pytest


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[bytes, list[np.ndarray]]:
    """10 frames of 120×90 at 10 fps (MJPG in AVI), a square moving right; and the frames as OpenCV reads them."""
    path = tmp_path_factory.mktemp("video") / "v.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (120, 90))
    for i in range(10):
        frame = np.full((90, 120, 3), 40, np.uint8)
        frame[20:60, 5 + 6 * i:45 + 6 * i] = (30, 30, 250)
        out.write(frame)
    out.release()
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return path.read_bytes(), frames


def _wait(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_video_job_samples_frames_and_predicts_each(server, video):
    data, frames = video
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/v1/models/det-a/predict/video", content=data, headers={"content-type": "video/x-msvideo"},
                   params={"every_ms": 250, "confidence": 0.01, "max_detections": 3})
        assert r.status_code == 202, r.text
        started = r.json()
        assert started["status"] in ("queued", "running") and started["model"] == "det-a" and started["version"] == 1
        assert started["fps"] == 10.0 and started["duration_ms"] == 1000.0
        job = _wait(c, started["id"])
        assert job["status"] == "done" and job["error"] is None
        assert [(f["index"], f["time_ms"]) for f in job["frames"]] == [(0, 0.0), (3, 300.0), (5, 500.0), (8, 800.0)]
        assert job["frames_done"] == 4 and job["frames_expected"] == 5
        tracked = [p["track"] for f in job["frames"] for p in f["predictions"] if p["track"]]
        assert sorted({t["track"] for t in job["tracks"]}) == sorted(set(tracked))  # tracks from infer's tracker
        for t in job["tracks"]:
            assert t["frames"] == tracked.count(t["track"]) and t["class"] in ("square", "triangle", "disc")
        for f in job["frames"]:  # each frame's predictions equal predicting that frame as an image
            png = cv2.imencode(".png", frames[f["index"]])[1].tobytes()
            alone = c.post("/v1/models/det-a/predict", content=png,
                           params={"confidence": 0.01, "max_detections": 3}).json()["images"][0]["predictions"]
            assert [p["class_id"] for p in f["predictions"]] == [p["class_id"] for p in alone]
            for a, b in zip(f["predictions"], alone, strict=True):
                assert a["box"] == pytest.approx(b["box"], abs=0.05)
        files = {"file": ("v.avi", data, "application/octet-stream")}
        again = c.post("/v1/models/detect/predict/video", files=files, params={"every_ms": 1000})
        assert again.status_code == 202 and again.json()["version"] == 2
        assert [f["index"] for f in _wait(c, again.json()["id"])["frames"]] == [0]


def test_bad_videos(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/v1/models/det-a/predict/video", content=b"%PDF-1.4 x", headers={"content-type": "video/mp4"})
        assert r.status_code == 415 and r.json()["message"] == "the body is not a video this server reads"
        fake = b"\x00\x00\x00\x18ftypmp42" + bytes(2000)
        r = c.post("/v1/models/det-a/predict/video", content=fake, headers={"content-type": "video/mp4"})
        assert r.status_code == 400 and r.json()["message"] == \
            "cannot read a frame from the video: corrupt, truncated or an unsupported codec"
        r = c.post("/v1/models/det-a/predict/video", content=b"", headers={"content-type": "video/mp4"})
        assert r.status_code == 400 and r.json()["message"] == "no video in the request"
        r = c.post("/v1/models/det-a/predict/video", content=b"x", params={"every_ms": 0},
                   headers={"content-type": "video/mp4"})
        assert r.status_code == 422 and r.json()["message"] == "every_ms: Input should be greater than or equal to 1"
        r = c.get("/v1/jobs/" + "0" * 32)
        assert r.status_code == 404 and r.json()["message"] == f"no job '{'0' * 32}' on this server"
        assert c.get("/v1/jobs/../../etc").status_code == 404
