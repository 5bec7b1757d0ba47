"""Drawing stored error events: one PNG per event, ground truth in green, the prediction in red.

An event with boxes is drawn on a crop around them (with as much context again around it, at least
`MIN_CONTEXT` px); an event without boxes (classification) on the whole image.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionloop.store.evaluations import EventInfo
from visionloop.store.project import Store

log = logging.getLogger(__name__)

GREEN = (40, 200, 40)  # BGR
RED = (40, 40, 230)
MIN_CONTEXT = 32


def _xyxy(b: Sequence[float]) -> tuple[int, int, int, int]:
    return int(round(b[0])), int(round(b[1])), int(round(b[0] + b[2])), int(round(b[1] + b[3]))


def draw_event(image: np.ndarray, e: EventInfo, *, crop: bool = True) -> np.ndarray:
    """BGR image → the event drawn (a crop when `crop` and it has boxes)."""
    import cv2

    img = image.copy()
    h, w = img.shape[:2]
    boxes = [(b, GREEN) for b in [e.gt_box] if b] + [(b, RED) for b in [e.pred_box] if b]
    if not boxes and e.box:
        boxes = [(e.box, GREEN if e.kind == "false_negative" else RED)]
    thick = max(1, round(max(h, w) / 400))
    for b, colour in boxes:
        x0, y0, x1, y1 = _xyxy(b)
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, thick)
    label = f"{e.error}: {e.category}" + (f" (truth {e.gt_category})" if e.gt_category and e.gt_category != e.category
                                          else "") + (f" {e.score:.2f}" if e.score is not None else "")
    if crop and boxes:
        xs = [v for b, _ in boxes for v in _xyxy(b)[0::2]]
        ys = [v for b, _ in boxes for v in _xyxy(b)[1::2]]
        mx = max(MIN_CONTEXT, (max(xs) - min(xs)) // 2)
        my = max(MIN_CONTEXT, (max(ys) - min(ys)) // 2)
        x0, x1 = max(0, min(xs) - mx), min(w, max(xs) + mx)
        y0, y1 = max(0, min(ys) - my), min(h, max(ys) + my)
        img = img[y0:y1, x0:x1]
    bar = np.full((18, max(img.shape[1], 8 * len(label)), 3), 255, np.uint8)
    cv2.putText(bar, label, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    canvas = np.full((img.shape[0] + bar.shape[0], bar.shape[1], 3), 255, np.uint8)
    canvas[:bar.shape[0]] = bar
    canvas[bar.shape[0]:, :img.shape[1]] = img
    return canvas


def draw_events(store: Store, events: Sequence[EventInfo], out: Path, *, crop: bool = True) -> list[Path]:
    """One PNG per event into `out` (`<event id>_<error>_<image stem>.png`); events whose image blob is gone
    are skipped (logged)."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    cache: dict[str, np.ndarray | None] = {}
    for e in events:
        if e.sha256 is None:
            continue
        if e.sha256 not in cache:
            try:
                data = store.blobs.get(e.sha256)
            except (FileNotFoundError, KeyError, OSError):
                log.warning("%s: its image blob %s is gone; not drawn", e.file_name, e.sha256)
                cache[e.sha256] = None
            else:
                cache = {e.sha256: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)}  # one at a time
        image = cache.get(e.sha256)
        if image is None:
            continue
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(e.file_name).stem)[:80]
        path = out / f"{e.id:06d}_{e.error}_{stem}.png"
        cv2.imwrite(str(path), draw_event(image, e, crop=crop))
        written.append(path)
    return written
