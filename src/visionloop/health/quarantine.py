"""Findings about what imports left out or noted: quarantined entries, images that landed cut short, and
images labelled as annotated that have no annotation."""

from __future__ import annotations

from sqlalchemy import select

from visionloop.health.result import Finding, Severity
from visionloop.store import quarantine
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, ImageRow

EXAMPLES = 20


def findings(store: Store | None) -> list[Finding]:
    """`quarantined`, `truncated_image` and `annotated_without_annotations` findings (none for a version)."""
    if store is None:
        return []
    out = []
    q = quarantine.records(store)
    if q:
        out.append(Finding(
            "quarantined", Severity.WARNING, len(q),
            f"{len(q)} entries of imported datasets were left out (quarantined): an image missing or unreadable, "
            "or annotations that cannot be read or repaired; fix them at the source and import again "
            "(`visionloop batch show N` lists each)",
            examples=[r.to_json() for r in q[:EXAMPLES]]))
    t = quarantine.truncated_images(store)
    if t:
        out.append(Finding(
            "truncated_image", Severity.WARNING, len(t),
            f"{len(t)} images were cut short; they were imported with the missing part grey — re-download them",
            examples=[{"image": iid, "file_name": name} for iid, name in t[:EXAMPLES]]))
    with store.engine.connect() as conn:
        empty = list(conn.execute(
            select(ImageRow.id, ImageRow.file_name)
            .where(ImageRow.state == "annotated",
                   ~select(AnnotationRow.id).where(AnnotationRow.image_id == ImageRow.id).exists())
            .order_by(ImageRow.id)))
    if empty:
        out.append(Finding(
            "annotated_without_annotations", Severity.WARNING, len(empty),
            f"{len(empty)} images are marked as annotated but have no annotation: label them, or mark them as "
            "empty (null) if there is nothing to label",
            examples=[{"image": iid, "file_name": name} for iid, name in empty[:EXAMPLES]]))
    return out
