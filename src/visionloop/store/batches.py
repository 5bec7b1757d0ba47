"""Batches and their change log: the one place that opens a batch, applies row changes and undoes them.

A batch is one thing a user did to the project's data: an import, a fix (and later a relabel coming back
from a labelling tool). Each row a batch changes in place is written to the change log (`ChangeRow`:
table, row id, op, the whole row before and after), so the batch can be undone exactly, row ids included:

    batch_id = batches.open_batch(conn, BatchKind.FIX, source="visionloop fix", summary=counts)
    batches.apply(conn, batch_id, changes)            # runs them and logs them, in one transaction
    restored = batches.undo(conn, batch_id)          # refused if a later batch changed those rows since

`conn` is a SQLAlchemy Connection inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from visionloop.core.errors import NotFoundError, ProjectError
from visionloop.store.schema import Base, BatchRow, ChangeRow

CHUNK = 500


class BatchKind(StrEnum):
    IMPORT = "import"
    FIX = "fix"
    SELECT = "select"  # images tagged by `visionloop select`
    BLUR = "blur"  # privacy regions found, added or rejected (`visionloop blur`)


class Op(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass
class RowChange:
    """One row changed by a batch: `before` is the row as it was (None for an insert), `after` as it becomes
    (None for a delete); both are whole column dicts."""

    table: str
    row_id: int
    op: Op
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def open_batch(conn: Connection, kind: BatchKind, *, source: str, format: str | None = None,
               split: str | None = None, summary: dict[str, Any] | None = None) -> int:
    """A new batch row; its id."""
    return int(conn.execute(insert(BatchRow.__table__).values(  # type: ignore[arg-type]
        kind=str(BatchKind(kind)), source=source, format=format, split=split, created_at=datetime.now(UTC),
        summary=summary or {})).inserted_primary_key[0])  # type: ignore[index]


def set_summary(conn: Connection, batch_id: int, summary: dict[str, Any]) -> None:
    conn.execute(update(BatchRow).where(BatchRow.id == batch_id).values(summary=summary))


def rows(conn: Connection, name: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Whole rows of a table by id, as column dicts."""
    t = table(name)
    ids = list(ids)
    out: dict[int, dict[str, Any]] = {}
    for s in range(0, len(ids), CHUNK):
        for r in conn.execute(select(t).where(t.c.id.in_(ids[s:s + CHUNK]))):
            out[r.id] = dict(r._mapping)
    return out


def rows_where(conn: Connection, name: str, column: str, values: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """Whole rows of a table whose `column` is one of `values`, by id."""
    t = table(name)
    values = list(values)
    out: dict[int, dict[str, Any]] = {}
    for s in range(0, len(values), CHUNK):
        for r in conn.execute(select(t).where(t.c[column].in_(values[s:s + CHUNK])).order_by(t.c.id)):
            out[r.id] = dict(r._mapping)
    return out


def next_id(conn: Connection, name: str) -> int:
    """A row id for a new row of table `name` that no row has, nor had in any change log (so undoing an older
    batch can never meet a row a later one added under the same id)."""
    t = table(name)
    used = conn.scalar(select(func.max(t.c.id))) or 0
    logged = conn.scalar(select(func.max(ChangeRow.row_id)).where(ChangeRow.table_name == name)) or 0
    return int(max(used, logged)) + 1


def jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def apply(conn: Connection, batch_id: int, changes: Sequence[RowChange]) -> None:
    """Run the changes in order and write them to the batch's change log."""
    for c in changes:
        if c.after is not None and "batch_id" in c.after:
            c.after["batch_id"] = batch_id  # the batch that last wrote the row
    run(conn, changes)
    log(conn, batch_id, changes)


def log(conn: Connection, batch_id: int, changes: Sequence[RowChange]) -> None:
    """Write changes (already made) to the batch's change log."""
    if changes:
        conn.execute(insert(ChangeRow.__table__), [  # type: ignore[arg-type]
            {"batch_id": batch_id, "table_name": c.table, "row_id": c.row_id, "op": str(c.op),
             "before": jsonable(c.before), "after": jsonable(c.after)} for c in changes])


def run(conn: Connection, changes: Sequence[RowChange]) -> None:
    """Run row changes in order, batching consecutive ones of the same table and op."""
    i = 0
    while i < len(changes):
        name, op = changes[i].table, changes[i].op
        j = i
        while j < len(changes) and changes[j].table == name and changes[j].op == op:
            j += 1
        group = changes[i:j]
        t = table(name)
        if op == Op.DELETE:
            ids = [g.row_id for g in group]
            for s in range(0, len(ids), CHUNK):
                conn.execute(delete(t).where(t.c.id.in_(ids[s:s + CHUNK])))
        elif op == Op.INSERT:
            conn.execute(insert(t), [g.after for g in group if g.after is not None])
        else:
            assert group[0].after is not None
            cols = [c for c in group[0].after if c != "id"]
            stmt = update(t).where(t.c.id == bindparam("_id")).values({c: bindparam(c) for c in cols})
            conn.execute(stmt, [{**{c: g.after[c] for c in cols}, "_id": g.row_id}  # type: ignore[index]
                                for g in group])
        i = j


def list_rows(conn: Connection) -> list[Any]:
    """Every batch, oldest first: (id, kind, source, format, split, created_at, summary)."""
    return list(conn.execute(select(BatchRow.id, BatchRow.kind, BatchRow.source, BatchRow.format, BatchRow.split,
                                    BatchRow.created_at, BatchRow.summary).order_by(BatchRow.id)))


def batch_row(conn: Connection, batch_id: int, *, root: Any = None) -> Any:
    """The batch's (kind, summary), or a NotFoundError."""
    batch = conn.execute(select(BatchRow.kind, BatchRow.summary).where(BatchRow.id == batch_id)).first()
    if batch is None:
        raise NotFoundError(f"no batch {batch_id} in this project", path=root,
                            hint="`visionloop batch list` shows the batches")
    return batch


def logged(conn: Connection, batch_id: int) -> list[RowChange]:
    """The batch's change log, newest first (the order an undo runs in)."""
    return [RowChange(r.table_name, r.row_id, Op(r.op), r.before, r.after) for r in conn.execute(
        select(ChangeRow).where(ChangeRow.batch_id == batch_id).order_by(ChangeRow.id.desc()))]


@dataclass
class Undone:
    """What undoing a batch did: the logged rows put back (the inverse changes, newest first), and the rows
    the batch had added that were removed (an import's new images and annotations, by count)."""

    restored: list[RowChange]
    removed: dict[str, int]


def undo(conn: Connection, batch_id: int, *, root: Any = None) -> Undone:
    """Undo a batch: put back every row in its change log and, for an import, remove the images and annotations
    it added. Refused, naming the row or the later batch, when a later batch changed those rows since (undo
    that one first). The batch is kept, marked undone."""
    batch = batch_row(conn, batch_id, root=root)
    summary = dict(batch.summary or {})
    if summary.get("undone_at"):
        raise ProjectError(f"batch {batch_id} was already undone at {summary['undone_at']}", path=root)
    if summary.get("baked"):
        n = int(summary["baked"])
        raise ProjectError(f"blur batch {batch_id} blurred {n} image{'s' if n != 1 else ''} in place and the project keeps "
                           "no originals (privacy.keep_originals: false): the unblurred pixels are gone, so it cannot "
                           "be undone", path=root, hint="its regions stay blurred; `visionloop blur regions add` "
                                                        "blurs more")
    changes = logged(conn, batch_id)
    inverse = inverse_of(conn, batch_id, changes, kind=batch.kind, root=root)
    removed: dict[str, int] = {}
    if batch.kind == BatchKind.IMPORT:
        updated = {c.row_id for c in changes if c.table == "image" and c.op == Op.UPDATE}
        removed = _remove_added(conn, batch_id, summary, updated, root=root)
        classes = [c.row_id for c in inverse if c.table == "class" and c.op == Op.DELETE]
        ann = table("annotation")
        used = conn.scalar(select(func.count()).select_from(ann).where(ann.c.class_id.in_(classes))) if classes else 0
        if used:
            raise ProjectError(f"classes that import batch {batch_id} added are used by {used} annotations of later "
                               "batches; undoing it would lose them", path=root, hint="undo the later batches first")
    run(conn, inverse)
    summary["undone_at"] = datetime.now(UTC).isoformat()
    set_summary(conn, batch_id, summary)
    return Undone(inverse, removed)


def _remove_added(conn: Connection, batch_id: int, summary: dict[str, Any], updated: set[int], *,
                  root: Any) -> dict[str, int]:
    """Delete the rows an import added (they carry its batch id), after checking that no later batch changed
    them: a later fix or import that touched them takes their batch id over, so the counts tell."""
    img, ann = table("image"), table("annotation")
    n_img = conn.scalar(select(func.count()).select_from(img).where(img.c.batch_id == batch_id)) or 0
    n_ann = conn.scalar(select(func.count()).select_from(ann).where(ann.c.batch_id == batch_id)) or 0
    want_img = int(summary.get("images_added", 0)) + int(summary.get("images_updated", 0))
    want_ann = int(summary.get("annotations_added", 0))
    reg = table("blur_region")
    blurred = conn.execute(select(reg.c.batch_id).distinct().join(img, img.c.id == reg.c.image_id)
                           .where(img.c.batch_id == batch_id)).scalars().all()
    baked = [b for b in blurred if (batch_row(conn, b).summary or {}).get("baked")]
    if baked:
        raise ProjectError(f"images that import batch {batch_id} added were blurred in place by batch "
                           f"{', '.join(map(str, sorted(baked)))} and their unblurred originals discarded "
                           "(privacy.keep_originals: false); the import cannot be undone", path=root)
    if blurred:
        raise ProjectError(f"images that import batch {batch_id} added have blur regions of later batches "
                           f"({', '.join(map(str, sorted(blurred)))}); undoing it would lose them", path=root,
                           hint="undo the blur batches first, newest first")
    if (n_img, n_ann) != (want_img, want_ann):
        later = conn.execute(select(BatchRow.id, BatchRow.kind, BatchRow.summary).where(BatchRow.id > batch_id)
                             .order_by(BatchRow.id.desc())).all()
        live = [f"{b.id} ({b.kind})" for b in later if not (b.summary or {}).get("undone_at")]
        raise ProjectError(
            f"images or annotations that import batch {batch_id} added were changed by a later batch "
            f"({n_img} of {want_img} images and {n_ann} of {want_ann} annotations are as it left them); undoing "
            "it would lose that change", path=root,
            hint=f"undo the later batches first, newest first: {', '.join(live)}" if live else None)
    conn.execute(delete(ann).where(ann.c.batch_id == batch_id))
    new_images = [int(i) for i in conn.scalars(select(img.c.id).where(img.c.batch_id == batch_id))
                  if int(i) not in updated]
    for s in range(0, len(new_images), CHUNK):
        conn.execute(delete(img).where(img.c.id.in_(new_images[s:s + CHUNK])))
    return {"images": len(new_images), "annotations": n_ann}


def inverse_of(conn: Connection, batch_id: int, changes: Sequence[RowChange], *, kind: str = "",
               root: Any = None) -> list[RowChange]:
    """The changes that undo `changes` (newest first), after checking that every row is still as the batch left it."""
    by_table: dict[str, list[int]] = {}
    for c in changes:
        by_table.setdefault(c.table, []).append(c.row_id)
    current = {t: rows(conn, t, ids) for t, ids in by_table.items()}
    inverse: list[RowChange] = []
    for c in changes:
        now = current[c.table].get(c.row_id)
        if (c.op == Op.DELETE and now is not None) or (c.op != Op.DELETE and jsonable(now) != c.after):
            raise ProjectError(f"{c.table} row {c.row_id} changed after {kind} batch {batch_id}; undoing would lose "
                               "that change", path=root, hint="undo the later batches first")
        if c.op == Op.DELETE:
            inverse.append(RowChange(c.table, c.row_id, Op.INSERT, c.after, c.before))
        elif c.op == Op.INSERT:
            inverse.append(RowChange(c.table, c.row_id, Op.DELETE, c.after, None))
        else:
            inverse.append(RowChange(c.table, c.row_id, Op.UPDATE, c.after, c.before))
    return inverse
