"""Video jobs: POST a video, get a job id, poll `GET /v1/jobs/{id}` for per-frame predictions.

Frames are sampled every `every_ms` of video time (`infer.video.sample_frames`, as `visionloop predict`
samples them), decoded in a thread, and go through the model's batcher like any image (so a video shares batches with ordinary requests and cannot starve them of
the queue: it submits one frame at a time). Jobs live in this process's memory (the newest `keep` of
them); with several server processes or replicas a client must poll the one that answered the POST.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.serve.errors import BadRequest, NotFound, UnsupportedMedia

log = logging.getLogger(__name__)


def sniff_video(data: bytes) -> str | None:
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "mkv"
    return None


@dataclass
class Job:
    id: str
    model: str
    version: int
    every_ms: float
    status: str = "queued"  # queued | running | done | failed
    created: float = field(default_factory=time.time)
    finished: float | None = None
    fps: float = 0.0
    duration_ms: float = 0.0
    frames: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        expected = int(self.duration_ms // self.every_ms) + 1 if self.duration_ms else None
        return {"id": self.id, "status": self.status, "model": self.model, "version": self.version,
                "every_ms": self.every_ms, "fps": round(self.fps, 3), "duration_ms": round(self.duration_ms, 1),
                "frames_done": len(self.frames), "frames_expected": expected, "error": self.error,
                "frames": self.frames, "tracks": self.tracks}


class Jobs:
    def __init__(self, keep: int = 100) -> None:
        self.keep = keep
        self.jobs: dict[str, Job] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id) if len(job_id) == 32 and job_id.isalnum() else None
        if job is None:
            raise NotFound(f"no job {job_id[:40]!r} on this server",
                           hint="jobs live in the memory of the server that accepted them, newest first")
        return job

    def add(self, job: Job) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > self.keep:
            oldest = next((j for j in self.jobs.values() if j.status in ("done", "failed")), None)
            if oldest is None:
                break
            del self.jobs[oldest.id]

    def start(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def new_id() -> str:
    return uuid.uuid4().hex


def save_video(data: bytes, folder: Path) -> Path:
    """Write the upload to a temporary file (OpenCV reads videos from files), after sniffing it."""
    if sniff_video(data) is None:
        raise UnsupportedMedia("the body is not a video this server reads", hint="send MP4, MOV, AVI, MKV or WebM")
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="video-", suffix=".bin", dir=folder)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def probe(path: Path) -> tuple[float, float]:
    """(fps, duration in ms); 400 when OpenCV cannot read a frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        ok, _ = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise BadRequest("cannot read a frame from the video: corrupt, truncated or an unsupported codec")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        return fps, (n / fps * 1000 if fps > 0 and n > 0 else 0.0)
    finally:
        cap.release()
