"""Evaluations: the one writer (and reader) of `evaluation` and `error_event` rows, and their lineage.

    from visionloop.store import evaluations
    info = evaluations.add(store, model_id=3, version_id=2, split="valid", task="detect",
                           metrics={...}, params={...}, images=40, events=[{...}, ...])
    evaluations.latest(store, model_id=3)                      # the newest evaluation of a model
    evaluations.events(store, info.id, error="missed", category="disc")

An evaluation's lineage: `evaluation ← model` and `evaluation ← version` (with the split).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

import visionloop
from visionloop.core.errors import NotFoundError
from visionloop.store import lineage
from visionloop.store.lineage import Kind, Ref
from visionloop.store.project import Store
from visionloop.store.schema import ErrorEventRow, EvaluationRow, ModelRow

#: the columns of an event, as `add` takes them and `events` returns them
EVENT_FIELDS = ("kind", "error", "image_id", "file_name", "sha256", "category", "gt_category", "score", "box",
                "pred_box", "gt_box", "gt_id", "iou")


@dataclass(frozen=True)
class EvaluationInfo:
    id: int
    model_id: int
    model: str
    version_id: int | None
    version: str
    split: str
    task: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    images: int
    events: int
    code_version: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EventInfo:
    id: int
    evaluation_id: int
    kind: str
    error: str
    image_id: int
    file_name: str
    sha256: str | None
    category: str
    gt_category: str | None
    score: float | None
    box: list[float] | None
    pred_box: list[float] | None
    gt_box: list[float] | None
    gt_id: int | None
    iou: float

    @classmethod
    def from_row(cls, r: ErrorEventRow) -> EventInfo:
        return cls(r.id, r.evaluation_id, r.kind, r.error, r.image_id, r.file_name, r.sha256, r.category,
                   r.gt_category, r.score, r.box, r.pred_box, r.gt_box, r.gt_id, r.iou)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _info(s: Any, row: EvaluationRow) -> EvaluationInfo:
    from sqlalchemy import func

    n = s.scalar(select(func.count()).select_from(ErrorEventRow).where(ErrorEventRow.evaluation_id == row.id))
    name = s.scalar(select(ModelRow.name).where(ModelRow.id == row.model_id)) or str(row.model_id)
    return EvaluationInfo(row.id, row.model_id, name, row.version_id, row.version_name, row.split, row.task,
                          dict(row.metrics or {}), dict(row.params or {}), row.images, int(n or 0),
                          row.code_version, row.created_at.isoformat())


def add(store: Store, *, model_id: int, version_id: int | None, version_name: str, split: str, task: str,
        metrics: dict[str, Any], params: Mapping[str, Any] | None = None, images: int = 0,
        events: Iterable[Mapping[str, Any]] = ()) -> EvaluationInfo:
    """An evaluation row, its events and its lineage (`evaluation ← model`, `evaluation ← version`), in one
    transaction."""
    with store.session() as s, s.begin():
        row = EvaluationRow(model_id=model_id, version_id=version_id, version_name=version_name, split=split,
                            task=task, metrics=metrics, params=dict(params or {}), images=images,
                            code_version=visionloop.__version__)
        s.add(row)
        s.flush()
        rows = [{"evaluation_id": row.id, **{k: e.get(k) for k in EVENT_FIELDS}} for e in events]
        for r in rows:
            r["iou"] = float(r["iou"] or 0.0)
        for i in range(0, len(rows), 1000):
            s.execute(insert(ErrorEventRow), rows[i:i + 1000])
        parents = [Ref(Kind.MODEL, model_id)]
        edge_params = {}
        if version_id is not None:
            v = Ref(Kind.VERSION, version_id)
            parents.append(v)
            edge_params[v] = {"split": split}
        lineage.record(s, Ref(Kind.EVALUATION, row.id), parents, params=edge_params)
        return _info(s, row)


def get(store: Store, evaluation_id: int) -> EvaluationInfo:
    with store.session() as s:
        row = s.get(EvaluationRow, evaluation_id)
        if row is None:
            raise NotFoundError(f"no evaluation {evaluation_id} in this project")
        return _info(s, row)


def list_all(store: Store, *, model_id: int | None = None, version_id: int | None = None,
             split: str | None = None) -> list[EvaluationInfo]:
    """Evaluations, oldest first, optionally of one model / version / split."""
    with store.session() as s:
        q = select(EvaluationRow).order_by(EvaluationRow.id)
        if model_id is not None:
            q = q.where(EvaluationRow.model_id == model_id)
        if version_id is not None:
            q = q.where(EvaluationRow.version_id == version_id)
        if split is not None:
            q = q.where(EvaluationRow.split == split)
        return [_info(s, r) for r in s.scalars(q)]


def latest(store: Store, *, model_id: int, version_id: int | None = None,
           split: str | None = None) -> EvaluationInfo | None:
    """The newest evaluation of a model (on a version / split when given), None when there is none."""
    found = list_all(store, model_id=model_id, version_id=version_id, split=split)
    return found[-1] if found else None


def events(store: Store, evaluation_id: int, *, error: str | None = None, category: str | None = None,
           kind: str | None = None) -> list[EventInfo]:
    """An evaluation's error events in stored order; `category` matches the event's class or its ground
    truth's."""
    with store.session() as s:
        q = select(ErrorEventRow).where(ErrorEventRow.evaluation_id == evaluation_id).order_by(ErrorEventRow.id)
        if error is not None:
            q = q.where(ErrorEventRow.error == error)
        if kind is not None:
            q = q.where(ErrorEventRow.kind == kind)
        if category is not None:
            q = q.where((ErrorEventRow.category == category) | (ErrorEventRow.gt_category == category))
        return [EventInfo.from_row(r) for r in s.scalars(q)]


def delete_evaluation(store: Store, evaluation_id: int) -> None:
    with store.session() as s, s.begin():
        lineage.forget(s, Ref(Kind.EVALUATION, evaluation_id))
        s.execute(delete(ErrorEventRow).where(ErrorEventRow.evaluation_id == evaluation_id))
        s.execute(delete(EvaluationRow).where(EvaluationRow.id == evaluation_id))
