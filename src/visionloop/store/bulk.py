"""Bulk inserts shared by every writer of the store (imports, versions, and later predictions and embeddings):
a plain `executemany` on SQLite (no per-row overhead), SQLAlchemy Core (which batches) elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection

from visionloop.store import locking
from visionloop.store.schema import BlobRow

__all__ = ["insert_blobs", "insert_tuples"]


def _sqlite_qmark(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark"


def insert_tuples(conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]], *,
                  or_ignore: bool = False) -> None:
    """Insert rows given as tuples in `columns` order (`or_ignore`: skip rows whose key exists, SQLite only)."""
    if not rows:
        return
    if _sqlite_qmark(conn):
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        raw = conn.connection.dbapi_connection
        database = conn.engine.url.database
        if database not in (None, "", ":memory:"):
            locking.begin_write(raw, str(database), None)  # the waiting notice, as for statements through SQLAlchemy
        sql = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()
    else:
        conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])


def insert_blobs(conn: Connection, blobs: dict[str, tuple[int, str | None]]) -> None:
    """Blob rows for new blobs (sha256 → size, format); blobs already known are left as they are."""
    if _sqlite_qmark(conn):
        insert_tuples(conn, BlobRow.__table__, ("sha256", "size", "media_format"),  # type: ignore[arg-type]
                      [(k, size, fmt) for k, (size, fmt) in blobs.items()], or_ignore=True)
        return
    known = set(conn.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_(list(blobs)))))
    new = [{"sha256": k, "size": v[0], "media_format": v[1]} for k, v in blobs.items() if k not in known]
    if new:
        conn.execute(insert(BlobRow), new)
