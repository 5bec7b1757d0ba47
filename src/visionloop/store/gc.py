"""`visionloop gc`: remove blob files that nothing in the project refers to.

Blobs are never deleted by the operations that stop referring to them (undoing an import, a fix that drops
duplicate images, deleting a model, a publish interrupted by a kill): they are content-addressed and may be
shared. `collect()` finds the files that no row refers to and removes them (or, with `dry_run`, only says so),
with the bytes they held. What refers to a blob is listed once, in `REFERENCES`: every table with a blob
column must be there (tests/store/test_gc.py checks the schema against it).

Safety: it holds the project's write lock while it works, so no import can publish blobs meanwhile; and
it leaves files younger than `min_age` seconds alone (a version being generated or a model being saved
writes its blobs before the rows that refer to them).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, text, union

from visionloop.store.project import Store
from visionloop.store.schema import Base, BlobRow

log = logging.getLogger(__name__)

#: (table, column) pairs whose values are blob hashes
REFERENCES: tuple[tuple[str, str], ...] = (
    ("image", "sha256"),
    ("version_item", "sha256"),
    ("model", "weights_sha256"),
    ("model_export", "sha256"),
    ("feedback", "sha256"),
    ("error_event", "sha256"),
    ("concept", "embedder_sha256"),
    ("concept_image", "sha256"),
    ("prediction_log", "sha256"),
)
#: (table, column) pairs keyed by a blob hash that do not keep the blob alive: derived data (an image's
#: embedding) that is worthless once its blob is gone — gc deletes those rows together with the blob
DERIVED: tuple[tuple[str, str], ...] = (
    ("embedding", "sha256"),
)


@dataclass
class GcReport:
    dry_run: bool
    files_removed: int = 0
    bytes_removed: int = 0
    rows_removed: int = 0
    temporary_removed: int = 0
    staging_removed: int = 0
    kept_recent: int = 0
    removed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "files_removed": self.files_removed, "bytes_removed": self.bytes_removed,
                "rows_removed": self.rows_removed, "temporary_removed": self.temporary_removed,
                "staging_removed": self.staging_removed, "kept_recent": self.kept_recent, "removed": self.removed}


def referenced(conn: Any) -> set[str]:
    tables = Base.metadata.tables
    parts = [select(tables[t].c[c].label("sha")).where(tables[t].c[c].is_not(None))
             for t, c in REFERENCES if t in tables]
    return {r[0] for r in conn.execute(union(*parts))}


def collect(store: Store, *, dry_run: bool = False, min_age: float = 600.0) -> GcReport:
    report = GcReport(dry_run=dry_run)
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM blob WHERE 1 = 0"))  # takes the write lock: no import publishes meanwhile
        keep = referenced(conn)
        doomed: list[str] = []
        for name, size, mtime in store.blobs.walk():
            if name in keep:
                continue
            if now - mtime < min_age:
                report.kept_recent += 1
                continue
            if name.endswith(".tmp"):
                report.temporary_removed += 1
            else:
                report.files_removed += 1
                report.bytes_removed += size
                doomed.append(name)
            report.removed.append(name)
            if not dry_run:
                store.blobs.remove(name)
        rows = [r for r in conn.scalars(select(BlobRow.sha256)) if r not in keep]
        report.rows_removed = len(rows)
        if not dry_run:
            tables = Base.metadata.tables
            for s in range(0, len(rows), 500):
                conn.execute(delete(BlobRow).where(BlobRow.sha256.in_(rows[s:s + 500])))
                for t, c in DERIVED:
                    if t in tables:
                        conn.execute(delete(tables[t]).where(tables[t].c[c].in_(rows[s:s + 500])))
        if not dry_run:
            report.staging_removed = store.blobs.sweep_staging()
    log.info("gc%s: %d files (%d bytes), %d rows", " (dry run)" if dry_run else "", report.files_removed,
             report.bytes_removed, report.rows_removed)
    return report
