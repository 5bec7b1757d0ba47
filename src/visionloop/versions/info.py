"""VersionInfo: what `version list` / `show` / `create` report about a version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from visionloop.store.schema import VersionRow


@dataclass
class VersionInfo:
    id: int
    name: str
    status: str
    parent_id: int | None
    recipe: dict[str, Any]
    recipe_hash: str
    seed: int
    source_batches: list[int]
    source_digest: str
    content_digest: str | None
    classes: list[dict[str, Any]]
    counts: dict[str, Any]
    total: int
    done: int
    code_version: str
    created_at: str
    finished_at: str | None
    parent: str | None = None
    reused: bool = False  # create_version found this identical version already made
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return int(self.counts.get("images", 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "status": self.status, "parent": self.parent,
            "parent_id": self.parent_id, "seed": self.seed, "recipe_hash": self.recipe_hash,
            "content_digest": self.content_digest, "source_batches": self.source_batches,
            "source_digest": self.source_digest, "created_at": self.created_at, "finished_at": self.finished_at,
            "code_version": self.code_version, "progress": {"done": self.done, "total": self.total},
            "counts": self.counts, "classes": [c["name"] for c in self.classes], "recipe": self.recipe,
            "reused": self.reused, **self.extra,
        }


def info_from_row(row: VersionRow, *, parent: str | None = None) -> VersionInfo:
    return VersionInfo(
        id=row.id, name=row.name, status=row.status, parent_id=row.parent_id, recipe=row.recipe,
        recipe_hash=row.recipe_hash, seed=row.seed, source_batches=list(row.source_batches or []),
        source_digest=row.source_digest, content_digest=row.content_digest, classes=list(row.classes or []),
        counts=dict(row.counts or {}), total=row.total, done=row.done, code_version=row.code_version,
        created_at=row.created_at.isoformat() if row.created_at else "",
        finished_at=row.finished_at.isoformat() if row.finished_at else None, parent=parent,
    )
