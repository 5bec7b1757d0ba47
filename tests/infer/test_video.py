"""Video: frame sampling, the IoU tracker (two-stage association, max age), tracks on a synthetic clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionloop.core.errors import VisionLoopError
from visionloop.infer import Predictor
from visionloop.infer.video import IoUTracker, parse_interval, predict_video, sample_frames


def _clip(path, frames=30, fps=10, size=64):
    """A 12 px white square moving right by 4 px every 5 frames (half a second at 10 fps)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    assert w.isOpened()
    for i in range(frames):
        f = np.zeros((size, size, 3), np.uint8)
        x = 4 + 4 * (i // 5)
        f[20:32, x:x + 12] = 255
        w.write(f)
    w.release()
    return path


def test_parse_interval():
    assert parse_interval("500ms") == 500 and parse_interval("2s") == 2000 and parse_interval("1.5") == 1500
    for bad in ("", "fast", "0ms", "-1s"):
        with pytest.raises(VisionLoopError):
            parse_interval(bad)


def test_sample_frames(tmp_path):
    clip = _clip(tmp_path / "c.mp4")
    assert [(i, t) for i, t, _ in sample_frames(clip, 500)] == [(0, 0), (5, 500), (10, 1000), (15, 1500),
                                                                  (20, 2000), (25, 2500)]
    assert [i for i, _, _ in sample_frames(clip, 250)] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]
    assert len(list(sample_frames(clip, 10))) == 30  # finer than the frame rate: every frame, once
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(VisionLoopError):
        list(sample_frames(bad, 500))


def test_moving_square_is_one_track(tmp_path, squares_onnx):
    clip = _clip(tmp_path / "square.mp4")
    res = predict_video(Predictor(squares_onnx), clip, every_ms=500, conf=0.5, iou=0.4)
    js = res.to_json()
    assert [f["index"] for f in js["frames"]] == [0, 5, 10, 15, 20, 25]
    assert [[d["box"] for d in f["detections"]] for f in js["frames"]] == [
        [[4 + 4 * k, 20, 16 + 4 * k, 32]] for k in range(6)]
    assert {d["track"] for f in js["frames"] for d in f["detections"]} == {1}
    (track,) = js["tracks"]
    assert {k: track[k] for k in ("track", "class", "first_ms", "last_ms", "duration_ms", "frames", "first_frame",
                                  "last_frame")} == {"track": 1, "class": "square", "first_ms": 0.0,
                                                     "last_ms": 2500.0, "duration_ms": 2500.0, "frames": 6,
                                                     "first_frame": 0, "last_frame": 25}
    assert js["fps"] == 10.0 and (js["width"], js["height"]) == (64, 64)


def _step(tr, dets, frame):
    boxes = np.array([d[0] for d in dets], float).reshape(-1, 4)
    scores = np.array([d[1] for d in dets], float)
    labels = np.array([d[2] for d in dets], np.int64)
    return tr.update(boxes, scores, labels, frame=frame, time_ms=frame * 100.0).tolist()


def test_tracker_two_stage_classes_and_age():
    tr = IoUTracker(match_iou=0.3, high=0.5, low=0.1, max_age=1)
    a, b = [0, 0, 10, 10], [50, 50, 60, 60]
    assert _step(tr, [(a, 0.9, 0), (b, 0.8, 1)], 0) == [1, 2]
    # a's score dips below `high`: the second stage keeps it on track 1; a box of another class on b's
    # place does not join track 2; a lone low score starts nothing
    assert _step(tr, [([1, 0, 11, 10], 0.3, 0), ([50, 50, 60, 60], 0.9, 0), ([90, 90, 95, 95], 0.2, 0)], 1) \
        == [1, 3, 0]
    assert _step(tr, [], 2) == []               # every track misses once (max_age 1: still alive)
    assert _step(tr, [([2, 0, 12, 10], 0.9, 0)], 3) == [1]  # track 1 resumes; 2 missed frames 1-3: ended
    assert _step(tr, [([50, 50, 60, 60], 0.9, 1)], 4) == [4]  # b's class again, but track 2 has ended
    summary = [(t.id, t.label, t.first_frame, t.last_frame, t.frames) for t in tr.tracks()]
    assert summary == [(1, 0, 0, 3, 3), (2, 1, 0, 0, 1), (3, 0, 1, 1, 1), (4, 1, 4, 4, 1)]
