"""Batches as a user sees them: what each import or fix did, and undoing one.

    list_batches(store)          # [BatchInfo, ...] oldest first
    show_batch(store, 3)         # one, with its counts
    undo_batch(store, 3)         # UndoReport: an import's images/annotations/classes removed, replaced rows back

Undo is exact (row ids included) and refused while a later batch has changed the same rows: undo that one
first. Image files (blobs) stay in the blob store; `visionloop gc` removes the ones nothing refers to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from visionloop.core.errors import NotFoundError
from visionloop.store import batches
from visionloop.store.project import Store

log = logging.getLogger(__name__)


@dataclass
class BatchInfo:
    id: int
    kind: str
    source: str
    format: str | None
    split: str | None
    created_at: datetime | None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def undone(self) -> bool:
        return bool(self.summary.get("undone_at"))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "source": self.source, "format": self.format, "split": self.split,
                "created_at": self.created_at.isoformat() if self.created_at else None, "undone": self.undone,
                "summary": self.summary}


@dataclass
class UndoReport:
    batch: BatchInfo
    removed: dict[str, int]  # rows the batch had added: images, annotations
    restored: dict[str, int]  # rows put back from the change log, by table and op

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch.to_json(), "removed": self.removed, "restored": self.restored}


def _info(row: Any) -> BatchInfo:
    return BatchInfo(int(row.id), row.kind, row.source, row.format, row.split, row.created_at, dict(row.summary or {}))


def list_batches(store: Store) -> list[BatchInfo]:
    with store.engine.connect() as conn:
        return [_info(r) for r in batches.list_rows(conn)]


def show_batch(store: Store, batch_id: int) -> BatchInfo:
    for b in list_batches(store):
        if b.id == batch_id:
            return b
    raise NotFoundError(f"no batch {batch_id} in this project", path=store.root,
                        hint="`visionloop batch list` shows the batches")


def undo_batch(store: Store, batch_id: int) -> UndoReport:
    """Undo an import or a fix batch, in one transaction."""
    with store.engine.begin() as conn:
        done = batches.undo(conn, batch_id, root=store.root)
    restored: dict[str, int] = {}
    for c in done.restored:
        key = f"{c.table}_{'deleted' if c.op == batches.Op.DELETE else 'restored'}"
        restored[key] = restored.get(key, 0) + 1
    info = show_batch(store, batch_id)
    log.info("undid %s batch %d: removed %s, restored %s", info.kind, batch_id, done.removed, restored)
    return UndoReport(info, done.removed, restored)
