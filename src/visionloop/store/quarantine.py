"""What imports quarantined: the records each import batch keeps in its summary, as health reads them.

An import batch's summary holds `quarantined`: [{"file", "element", "reason"}, ...] (paths relative to the
imported folder). For each source only its latest import that is not undone counts: re-importing a
repaired dataset ends the earlier list. Images that landed cut short carry `meta["truncated_image"]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from visionloop.store.project import Store
from visionloop.store.schema import BatchRow, ImageRow


@dataclass(frozen=True)
class Quarantined:
    batch: int
    source: str
    file: str
    element: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "source": self.source, "file": self.file, "element": self.element,
                "reason": self.reason}


def _latest_imports(store: Store) -> dict[str, tuple[int, dict[str, Any]]]:
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    with store.engine.connect() as conn:
        for bid, source, summary in conn.execute(
                select(BatchRow.id, BatchRow.source, BatchRow.summary)
                .where(BatchRow.kind == "import").order_by(BatchRow.id)):
            summary = summary or {}
            if not summary.get("undone_at"):
                latest[source] = (bid, summary)
    return latest


def records(store: Store) -> list[Quarantined]:
    """Every entry the latest import of each source left out, oldest batch first."""
    out = []
    for source, (bid, summary) in sorted(_latest_imports(store).items(), key=lambda kv: kv[1][0]):
        for r in summary.get("quarantined") or ():
            out.append(Quarantined(bid, source, r.get("file", ""), r.get("element"), r.get("reason", "")))
    return out


def has_open_records(store: Store, source: str) -> bool:
    """Whether the latest import of `source` quarantined something (a new import must then end that list)."""
    latest = _latest_imports(store).get(source)
    return bool(latest and latest[1].get("quarantined"))


def truncated_images(store: Store) -> list[tuple[int, str]]:
    """(image id, file name) of the images that landed cut short."""
    with store.engine.connect() as conn:
        return [(iid, name) for iid, name in conn.execute(
            select(ImageRow.id, ImageRow.file_name)
            .where(ImageRow.meta["truncated_image"].as_boolean().is_(True)).order_by(ImageRow.id))]
