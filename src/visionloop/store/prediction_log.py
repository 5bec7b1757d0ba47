"""The prediction log: served images the server's sampling rules kept, the one writer of `prediction_log` rows.

    from visionloop.store import prediction_log as plog
    plog.append(store, [plog.LogEntry(created_at=now, model="detect", model_name="m3", model_version=3,
                                      task="detect", image=data, width=640, height=480, predictions=[...])])
    plog.query(store, model="detect", below=0.5, since=yesterday)    # what relabelling should look at
    plog.stats(store, bucket="hour").to_json()                       # volume, confidences, class mix

Append-only: `append` writes the images as blobs first, then every row of the batch in one transaction (a
failed batch leaves only unreferenced blobs, which `visionloop gc` removes). Times are UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, or_, select

from visionloop.core.errors import VisionLoopError
from visionloop.store.project import Store
from visionloop.store.schema import PredictionLogRow

Bucket = Literal["hour", "day"]


@dataclass(frozen=True)
class LogEntry:
    """One served image to log (what the server hands to `append`)."""

    created_at: datetime
    model: str
    model_name: str
    model_version: int
    task: str
    image: bytes
    width: int
    height: int
    predictions: list[Any]
    image_name: str = ""
    key_prefix: str | None = None
    #: the image's vector under `embedding_model` (float32), computed by the server's writer when it has an embedder
    embedding: Any = None
    embedding_model: str | None = None


@dataclass(frozen=True)
class LoggedPrediction:
    id: int
    created_at: datetime
    model: str
    model_name: str
    model_version: int
    task: str
    image_sha256: str
    image_name: str
    width: int
    height: int
    predictions: list[Any]
    max_confidence: float | None
    min_confidence: float | None
    key_prefix: str | None
    has_embedding: bool

    @classmethod
    def from_row(cls, r: PredictionLogRow) -> LoggedPrediction:
        return cls(r.id, _utc(r.created_at), r.model, r.model_name, r.model_version, r.task, r.sha256, r.image_name,
                   r.width, r.height, list(r.predictions or []), r.max_confidence, r.min_confidence, r.key_prefix,
                   r.embedding is not None)

    @property
    def classes(self) -> list[str]:
        return sorted({p["class"] for p in self.predictions if "class" in p})

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at.isoformat(), "model": self.model,
                "model_name": self.model_name, "model_version": self.model_version, "task": self.task,
                "image_sha256": self.image_sha256, "image_name": self.image_name,
                "size": {"width": self.width, "height": self.height}, "predictions": self.predictions,
                "max_confidence": self.max_confidence, "min_confidence": self.min_confidence,
                "key": self.key_prefix, "has_embedding": self.has_embedding}


def summary(predictions: Sequence[dict[str, Any]]) -> tuple[float | None, float | None, list[str]]:
    """(max confidence, min confidence, sorted class names) of one image's predictions; confidences are None
    when there are none (no prediction, or a semantic map, whose classes carry pixel fractions instead)."""
    confs = [float(p["confidence"]) for p in predictions if p.get("confidence") is not None]
    names = sorted({str(p["class"]) for p in predictions if "class" in p})
    return (max(confs) if confs else None), (min(confs) if confs else None), names


def append(store: Store, entries: Iterable[LogEntry]) -> int:
    """Write a batch: the images as blobs (each distinct content once), then all rows in one transaction."""
    entries = list(entries)
    if not entries:
        return 0
    shas: dict[int, str] = {}
    for e in entries:
        if id(e.image) not in shas:
            shas[id(e.image)] = store.blobs.put(e.image)
    rows = []
    for e in entries:
        hi, lo, names = summary(e.predictions)
        rows.append(PredictionLogRow(
            created_at=_utc(e.created_at), model=e.model, model_name=e.model_name, model_version=e.model_version,
            task=e.task, sha256=shas[id(e.image)], image_name=e.image_name[:256], width=e.width, height=e.height,
            predictions=e.predictions, count=len(e.predictions), max_confidence=hi, min_confidence=lo,
            classes="," + "".join(f"{n}," for n in names), key_prefix=e.key_prefix,
            embedding=None if e.embedding is None else np.asarray(e.embedding, dtype="<f4").tobytes(),
            embedding_model=None if e.embedding is None else e.embedding_model))
    with store.session() as s, s.begin():
        s.add_all(rows)
    return len(rows)


def embeddings(store: Store, ids: Iterable[int]) -> dict[int, tuple[str, np.ndarray]]:
    """The stored vectors of these log rows: {id: (embedder, float32 vector)}; rows without one are absent."""
    want = list(dict.fromkeys(int(i) for i in ids))
    out: dict[int, tuple[str, np.ndarray]] = {}
    with store.session() as s:
        for k in range(0, len(want), 500):
            q = select(PredictionLogRow.id, PredictionLogRow.embedding_model, PredictionLogRow.embedding).where(
                PredictionLogRow.id.in_(want[k:k + 500]), PredictionLogRow.embedding.is_not(None))
            for rid, name, blob in s.execute(q):
                if blob is not None:  # (the query keeps only rows with one)
                    out[int(rid)] = (str(name), np.frombuffer(blob, dtype="<f4").copy())
    return out


def _filtered(q: Any, *, model: str | None, since: datetime | None, until: datetime | None, below: float | None,
              class_name: str | None) -> Any:
    if model is not None:
        q = q.where(or_(PredictionLogRow.model == model, PredictionLogRow.model_name == model))
    if since is not None:
        q = q.where(PredictionLogRow.created_at >= _utc(since))
    if until is not None:
        q = q.where(PredictionLogRow.created_at < _utc(until))
    if below is not None:
        q = q.where(or_(PredictionLogRow.max_confidence < below, PredictionLogRow.max_confidence.is_(None)))
    if class_name is not None:
        if "," in class_name:
            raise VisionLoopError(f"a class name has no comma: {class_name!r}", hint="give one class")
        q = q.where(PredictionLogRow.classes.contains(f",{class_name},", autoescape=True))
    return q


def query(store: Store, *, model: str | None = None, since: datetime | None = None, until: datetime | None = None,
          below: float | None = None, class_name: str | None = None, limit: int | None = None,
          newest_first: bool = False) -> list[LoggedPrediction]:
    """Logged images, oldest first (or newest first): `model` matches the served name or the registry model's;
    `below` keeps images whose top confidence is under it, or that have no prediction; `class_name` keeps
    images with at least one prediction of that class; times are [since, until)."""
    order = PredictionLogRow.id.desc() if newest_first else PredictionLogRow.id
    q = _filtered(select(PredictionLogRow), model=model, since=since, until=until, below=below,
                  class_name=class_name).order_by(order)
    if limit is not None:
        q = q.limit(limit)
    with store.session() as s:
        return [LoggedPrediction.from_row(r) for r in s.scalars(q)]


def count(store: Store, **filters: Any) -> int:
    with store.session() as s:
        return int(s.scalar(_filtered(select(func.count(PredictionLogRow.id)), **{
            "model": None, "since": None, "until": None, "below": None, "class_name": None, **filters})) or 0)


@dataclass
class PredictionStats:
    """Volume per time bucket, confidence histograms and the class mix per bucket (drift at a glance).

    `confidence_hist` counts every prediction's confidence, `top_confidence_hist` each image's highest one
    (images without a prediction are `no_prediction`); both over `bins` equal bins of [0, 1]."""

    bucket: str
    bins: int
    images: int = 0
    predictions: int = 0
    no_prediction: int = 0
    first: datetime | None = None
    last: datetime | None = None
    by_model: dict[str, int] = field(default_factory=dict)  # "name v<id>" -> images
    volume: dict[str, int] = field(default_factory=dict)  # bucket start (ISO) -> images
    confidence_hist: list[int] = field(default_factory=list)
    top_confidence_hist: list[int] = field(default_factory=list)
    class_mix: dict[str, dict[str, int]] = field(default_factory=dict)  # bucket -> class -> predictions

    @property
    def edges(self) -> list[float]:
        return [round(i / self.bins, 6) for i in range(self.bins + 1)]

    @property
    def classes(self) -> list[str]:
        total: Counter[str] = Counter()
        for mix in self.class_mix.values():
            total.update(mix)
        return [c for c, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))]

    def to_json(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "images": self.images, "predictions": self.predictions,
                "no_prediction": self.no_prediction,
                "first": self.first.isoformat() if self.first else None,
                "last": self.last.isoformat() if self.last else None, "by_model": self.by_model,
                "volume": self.volume, "confidence_edges": self.edges, "confidence_hist": self.confidence_hist,
                "top_confidence_hist": self.top_confidence_hist, "class_mix": self.class_mix}


def bucket_start(t: datetime, bucket: Bucket) -> datetime:
    t = _utc(t)
    return t.replace(minute=0, second=0, microsecond=0) if bucket == "hour" else \
        t.replace(hour=0, minute=0, second=0, microsecond=0)


def stats(store: Store, *, model: str | None = None, since: datetime | None = None, until: datetime | None = None,
          bucket: Bucket = "hour", bins: int = 10) -> PredictionStats:
    """Aggregate the log (streamed in id order, so memory stays flat); empty buckets between the first and the
    last one are listed with 0, so a gap in traffic shows."""
    if bucket not in ("hour", "day"):
        raise VisionLoopError(f"unknown bucket {bucket!r}", hint="hour or day")
    if bins < 1:
        raise VisionLoopError("bins must be at least 1")
    out = PredictionStats(bucket=bucket, bins=bins, confidence_hist=[0] * bins, top_confidence_hist=[0] * bins)
    cols = (PredictionLogRow.created_at, PredictionLogRow.model_name, PredictionLogRow.model_version,
            PredictionLogRow.predictions, PredictionLogRow.max_confidence)
    q = _filtered(select(*cols), model=model, since=since, until=until, below=None, class_name=None)
    volume: Counter[datetime] = Counter()
    mix: dict[datetime, Counter[str]] = {}
    models: Counter[str] = Counter()

    def bin_of(c: float) -> int:
        return min(bins - 1, max(0, int(c * bins)))

    with store.session() as s:
        for created, name, version, preds, top in s.execute(q.order_by(PredictionLogRow.id)).yield_per(1000):
            t = _utc(created)
            out.images += 1
            out.first = t if out.first is None or t < out.first else out.first
            out.last = t if out.last is None or t > out.last else out.last
            models[f"{name} v{version}"] += 1
            b = bucket_start(t, bucket)
            volume[b] += 1
            m = mix.setdefault(b, Counter())
            for p in preds or []:
                out.predictions += 1
                if "class" in p:
                    m[str(p["class"])] += 1
                if p.get("confidence") is not None:
                    out.confidence_hist[bin_of(float(p["confidence"]))] += 1
            if top is None:
                out.no_prediction += 1
            else:
                out.top_confidence_hist[bin_of(top)] += 1
    if volume:
        step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
        b, end = min(volume), max(volume)
        while b <= end:
            out.volume[b.isoformat()] = volume.get(b, 0)
            out.class_mix[b.isoformat()] = dict(sorted(mix.get(b, Counter()).items()))
            b += step
    out.by_model = dict(sorted(models.items()))
    return out


def _utc(t: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes; they were written as UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
