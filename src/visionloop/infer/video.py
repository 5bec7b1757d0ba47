"""Video: frames sampled at an interval, detections linked into tracks.

    result = predict_video(predictor, "clip.mp4", every_ms=500, conf=0.25)
    result.to_json()  # {"frames": [{index, time_ms, detections: [{class, score, box, track}]}], "tracks": [...]}

Frames: the first frame at or after each multiple of `every_ms` of video time (from the frame
index and the container's frame rate, so the times are exact for constant-rate video).

Tracks (`IoUTracker`): ByteTrack-style association, per class. A detection scoring at least
`high` is first matched to the live tracks by IoU (greedy on the highest IoU, at least `match_iou`);
tracks still unmatched then take the low-score detections (`low` ≤ score < `high`), which
keeps an object whose score dips for a frame on its track; an unmatched high-score detection
starts a track; a track not matched for more than `max_age` sampled frames ends. Each track has a
class, its first and last time, duration and the number of frames it was seen in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visionloop.core.errors import VisionLoopError

if TYPE_CHECKING:
    from visionloop.infer.predictor import Predictor

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def parse_interval(text: str) -> float:
    """`500ms`, `2s`, `1.5s`, `0.5` (seconds) → milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise VisionLoopError(f"cannot read the interval {text!r}", hint="e.g. --every 500ms or --every 2s")
    value = float(m.group(1))
    return value if m.group(2) == "ms" else value * 1000


def sample_frames(path: str | Path, every_ms: float) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in ms, RGB frame) for the first frame at or after each multiple of `every_ms`."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VisionLoopError("cannot open the video", path=path, hint="pass an MP4, MOV, AVI, MKV or WebM file")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    try:
        i, due, any_frame = 0, 0.0, False
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            any_frame = True
            t = i * 1000.0 / fps if fps > 0 else float(cap.get(cv2.CAP_PROP_POS_MSEC))
            if t + 1e-6 >= due:
                yield i, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                due += every_ms * (int((t - due) // every_ms) + 1)
            i += 1
        if not any_frame:
            raise VisionLoopError("cannot read a frame from the video", path=path,
                                  hint="the file is corrupt, truncated or in a codec this OpenCV cannot decode")
    finally:
        cap.release()


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None] + ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None] \
        - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _greedy(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by decreasing IoU (ties: lower row, then lower col), each row and col once."""
    pairs = []
    if iou.size:
        rows, cols = np.nonzero(iou >= threshold)
        order = np.lexsort((cols, rows, -iou[rows, cols]))
        used_r, used_c = set(), set()
        for k in order:
            r, c = int(rows[k]), int(cols[k])
            if r not in used_r and c not in used_c:
                used_r.add(r)
                used_c.add(c)
                pairs.append((r, c))
    return pairs


@dataclass
class Track:
    id: int
    label: int
    box: np.ndarray
    first_ms: float
    last_ms: float
    first_frame: int
    last_frame: int
    frames: int = 1
    misses: int = 0
    scores: list[float] = field(default_factory=list)

    def to_json(self, classes: list[str]) -> dict[str, Any]:
        return {"track": self.id, "class": classes[self.label], "first_ms": round(self.first_ms, 1),
                "last_ms": round(self.last_ms, 1), "duration_ms": round(self.last_ms - self.first_ms, 1),
                "frames": self.frames, "first_frame": self.first_frame, "last_frame": self.last_frame,
                "mean_score": round(float(np.mean(self.scores)), 6) if self.scores else None}


class IoUTracker:
    """Per-class IoU tracker with ByteTrack's two-stage association (see the module)."""

    def __init__(self, *, match_iou: float = 0.3, high: float = 0.5, low: float = 0.1, max_age: int = 2) -> None:
        self.match_iou, self.high, self.low, self.max_age = match_iou, high, low, max_age
        self.live: list[Track] = []
        self.done: list[Track] = []
        self._next = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, *, frame: int,
               time_ms: float) -> np.ndarray:
        """Associate one frame's detections; returns each detection's track id (0: left untracked, a low score)."""
        ids = np.zeros(len(scores), np.int64)
        matched: set[int] = set()
        for stage in ("high", "low"):
            det = np.nonzero((scores >= self.high) if stage == "high" else
                             ((scores >= self.low) & (scores < self.high)))[0]
            for c in np.unique(labels[det]) if len(det) else []:
                d = det[labels[det] == c]
                t = [k for k, tr in enumerate(self.live) if tr.label == c and k not in matched]
                if not t:
                    continue
                iou = iou_matrix(np.asarray([self.live[k].box for k in t]), boxes[d])
                for r, col in _greedy(iou, self.match_iou):
                    tr, j = self.live[t[r]], int(d[col])
                    matched.add(t[r])
                    tr.box, tr.last_ms, tr.last_frame, tr.misses = boxes[j].astype(np.float64), time_ms, frame, 0
                    tr.frames += 1
                    tr.scores.append(float(scores[j]))
                    ids[j] = tr.id
        for k, tr in enumerate(self.live):
            if k not in matched:
                tr.misses += 1
        for j in np.nonzero((ids == 0) & (scores >= self.high))[0]:
            tr = Track(self._next, int(labels[j]), boxes[j].astype(np.float64), time_ms, time_ms, frame, frame,
                       scores=[float(scores[j])])
            self._next += 1
            self.live.append(tr)
            ids[j] = tr.id
        self.done += [tr for tr in self.live if tr.misses > self.max_age]
        self.live = [tr for tr in self.live if tr.misses <= self.max_age]
        return ids

    def tracks(self) -> list[Track]:
        return sorted(self.done + self.live, key=lambda t: t.id)


@dataclass
class VideoResult:
    file_name: str
    every_ms: float
    fps: float
    width: int
    height: int
    classes: list[str]
    frames: list[dict[str, Any]]
    tracks: list[Track]

    def to_json(self) -> dict[str, Any]:
        return {"file_name": self.file_name, "every_ms": self.every_ms, "fps": round(self.fps, 3),
                "width": self.width, "height": self.height, "frames": self.frames,
                "tracks": [t.to_json(self.classes) for t in self.tracks]}


def predict_video(predictor: Predictor, path: str | Path, *, every_ms: float = 500.0, conf: float = 0.25,
                  iou: float = 0.6, max_det: int = 100, tracker: IoUTracker | None = None,
                  **predict_kw: Any) -> VideoResult:
    """Predict the sampled frames of a video and link the detections into tracks.

    Detections down to `tracker.low` take part in the association (ByteTrack's second stage); the
    frames list those at or above `conf` and the lower ones that continued a track. `predict_kw` go to `Predictor.predict` (e.g. `tile`)."""
    import cv2

    if predictor.task not in ("detect", "segment"):
        raise VisionLoopError(f"video tracks need a detection model, not {predictor.task}",
                              hint="predict single frames of a classifier or a semantic model")
    tracker = tracker or IoUTracker(high=conf, low=min(0.1, conf / 2))
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    frames: list[dict[str, Any]] = []
    w = h = 0
    for index, t, rgb in sample_frames(path, every_ms):
        h, w = rgb.shape[:2]
        p = predictor.predict(rgb, conf=min(conf, tracker.low), iou=iou, max_det=max_det, **predict_kw)
        ids = tracker.update(p.boxes, p.scores, p.labels, frame=index, time_ms=t)
        dets = [{"class": predictor.classes[int(c)], "score": round(float(s), 6),
                 "box": [round(float(v), 2) for v in b], "track": int(i) or None}
                for b, s, c, i in zip(p.boxes, p.scores, p.labels, ids, strict=True) if s >= conf or i]
        frames.append({"index": index, "time_ms": round(t, 1), "detections": dets})
    return VideoResult(Path(path).name, every_ms, fps, w, h, predictor.classes, frames, tracker.tracks())
