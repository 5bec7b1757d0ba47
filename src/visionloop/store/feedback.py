"""Feedback: corrections of served predictions, the one writer of `feedback` rows.

    from visionloop.store import feedback
    info = feedback.add(store, model="detect", model_version=3, image=data, image_name="a.jpg",
                        prediction=[...], correction=[{"class": "disc", "box": [x0, y0, x1, y1]}])
    feedback.list_all(store, status="open")          # what relabelling should look at
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from visionloop.store.project import Store
from visionloop.store.schema import FeedbackRow

STATUSES = ("open", "used", "dismissed")


@dataclass(frozen=True)
class FeedbackInfo:
    id: int
    model: str
    model_version: int | None
    image_sha256: str | None
    image_name: str
    prediction: list[Any]
    correction: list[Any]
    note: str
    key_prefix: str | None
    status: str
    created_at: str

    @classmethod
    def from_row(cls, r: FeedbackRow) -> FeedbackInfo:
        return cls(r.id, r.model, r.model_version, r.sha256, r.image_name, list(r.prediction or []),
                   list(r.correction or []), r.note, r.key_prefix, r.status, r.created_at.isoformat())

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "model_version": self.model_version,
                "image_sha256": self.image_sha256, "image_name": self.image_name, "prediction": self.prediction,
                "correction": self.correction, "note": self.note, "key": self.key_prefix, "status": self.status,
                "created_at": self.created_at}


def add(store: Store, *, model: str, model_version: int | None, correction: list[Any],
        prediction: list[Any] | None = None, image: bytes | None = None, image_sha256: str | None = None,
        image_name: str = "", note: str = "", key_prefix: str | None = None) -> FeedbackInfo:
    sha = store.blobs.put(image) if image is not None else image_sha256
    with store.session() as s, s.begin():
        row = FeedbackRow(model=model, model_version=model_version, sha256=sha, image_name=image_name,
                          prediction=prediction or [], correction=correction, note=note, key_prefix=key_prefix,
                          status="open")
        s.add(row)
        s.flush()
        return FeedbackInfo.from_row(row)


def list_all(store: Store, *, status: str | None = None, model: str | None = None) -> list[FeedbackInfo]:
    with store.session() as s:
        q = select(FeedbackRow).order_by(FeedbackRow.id)
        if status is not None:
            q = q.where(FeedbackRow.status == status)
        if model is not None:
            q = q.where(FeedbackRow.model == model)
        return [FeedbackInfo.from_row(r) for r in s.scalars(q)]
