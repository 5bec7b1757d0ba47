"""Writes of dataset versions: the version row, its generated items (bulk), progress, and the finished state
with its lineage. `versions/` computes; this module is where those results become rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

import visionloop
from visionloop.store import bulk, lineage
from visionloop.store.lineage import Kind, Ref
from visionloop.store.schema import VersionItemRow, VersionRow

#: the version_item columns a worker fills, in the order of its rows
ITEM_COLUMNS = ("version_id", "position", "out_index", "split", "file_name", "sha256", "width", "height",
                "orientation", "media_format", "source_image_id", "n_annotations", "annotations", "meta")

def insert_items(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """version_item rows, in ITEM_COLUMNS order."""
    bulk.insert_tuples(conn, VersionItemRow.__table__, ITEM_COLUMNS, rows)  # type: ignore[arg-type]


def new_version(s: Session, *, name: str, parent_id: int | None, recipe: dict[str, Any], recipe_hash: str,
                seed: int, source_batches: list[int], source_digest: str, classes: list[Any],
                counts: dict[str, Any], total: int) -> VersionRow:
    """A version row in the generating state (flushed: it has its id)."""
    row = VersionRow(name=name, parent_id=parent_id, status="generating", recipe=recipe, recipe_hash=recipe_hash,
                     seed=seed, source_batches=source_batches, source_digest=source_digest, classes=classes,
                     counts=counts, total=total, done=0, code_version=visionloop.__version__)
    s.add(row)
    s.flush()
    return row


def set_progress(conn: Connection, version_id: int, *, done: int, counts: dict[str, Any]) -> None:
    """The resume point (source images whose outputs are stored) and the running counts."""
    conn.execute(update(VersionRow).where(VersionRow.id == version_id).values(done=done, counts=counts))


def mark_ready(s: Session, row: VersionRow, *, counts: dict[str, Any], content_digest: str,
               batches: list[int]) -> None:
    """Finish a version: its counts, content digest, ready state, and lineage (← the batches it read, its recipe,
    and its parent version)."""
    row.counts = counts
    row.content_digest = content_digest
    row.status = "ready"
    row.finished_at = datetime.now(UTC)
    recipe_ref = Ref(Kind.RECIPE, row.recipe_hash)
    sources = [Ref(Kind.BATCH, b) for b in batches] + [recipe_ref]
    if row.parent_id is not None:
        sources.append(Ref(Kind.VERSION, row.parent_id))
    s.flush()
    lineage.record(s, Ref(Kind.VERSION, row.id), sources,
                   params={recipe_ref: {"recipe": row.recipe, "source_digest": row.source_digest}})
