"""Concepts: the one writer of `concept` and `concept_image` rows, and their lineage.

    from visionloop.store import concepts
    info = concepts.save(store, name="raccoon", kind="logistic", embedder="efficientnet_lite0.imagenet@224",
                         embedder_sha256=sha, dim=1280, threshold=0.5, head={...},
                         images=[(sha256, "positive", "a.jpg"), ...])        # replaces a concept of that name
    concepts.get(store, "raccoon"); concepts.list_all(store); concepts.delete(store, "raccoon")
    concepts.embedder_blob(store, "efficientnet_lite0.imagenet@224")     # an ONNX embedder already stored

Training images are blobs (so a concept can be traced back to, and retaught from, its exact images). Lineage:
`concept ← batch` for each import batch that holds one of the training images (the edge's params list
the hashes), so a concept made from project images points at them; other images are known by hash only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

import visionloop
from visionloop.core.errors import NotFoundError
from visionloop.store import lineage
from visionloop.store.lineage import Kind, Ref
from visionloop.store.project import Store
from visionloop.store.schema import ConceptImageRow, ConceptRow, ImageRow

ROLES = ("positive", "negative")


@dataclass
class ConceptInfo:
    id: int
    name: str
    kind: str
    embedder: str
    embedder_sha256: str
    dim: int
    threshold: float
    head: dict[str, Any]
    code_version: str
    created_at: str
    images: list[dict[str, str]] = field(default_factory=list)  # sha256, role, file_name
    replaced: bool = False  # save() replaced a concept of the same name

    @property
    def positives(self) -> int:
        return sum(1 for i in self.images if i["role"] == "positive")

    @property
    def negatives(self) -> int:
        return sum(1 for i in self.images if i["role"] == "negative")

    def to_json(self, *, weights: bool = False) -> dict[str, Any]:
        head = self.head if weights else {k: v for k, v in self.head.items() if k != "weights"}
        return {"id": self.id, "name": self.name, "kind": self.kind, "embedder": self.embedder,
                "embedder_sha256": self.embedder_sha256, "dim": self.dim, "threshold": self.threshold,
                "positives": self.positives, "negatives": self.negatives, "head": head, "images": self.images,
                "code_version": self.code_version, "created_at": self.created_at, "replaced": self.replaced}


def _info(r: ConceptRow, images: list[ConceptImageRow]) -> ConceptInfo:
    return ConceptInfo(r.id, r.name, r.kind, r.embedder, r.embedder_sha256, r.dim, float(r.threshold),
                       dict(r.head or {}), r.code_version, r.created_at.isoformat(),
                       [{"sha256": i.sha256, "role": i.role, "file_name": i.file_name} for i in images])


def save(store: Store, *, name: str, kind: str, embedder: str, embedder_sha256: str, dim: int, threshold: float,
         head: dict[str, Any], images: list[tuple[str, str, str]]) -> ConceptInfo:
    """Store a concept (its images' blobs must already be in the store); one of the same name is replaced."""
    for _, role, _ in images:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
    with store.session() as s, s.begin():
        old = s.scalar(select(ConceptRow).where(ConceptRow.name == name))
        if old is not None:
            lineage.forget(s, Ref(Kind.CONCEPT, old.id))
            s.execute(delete(ConceptImageRow).where(ConceptImageRow.concept_id == old.id))
            s.delete(old)
            s.flush()
        row = ConceptRow(name=name, kind=kind, embedder=embedder, embedder_sha256=embedder_sha256, dim=dim,
                         threshold=threshold, head=head, code_version=visionloop.__version__)
        s.add(row)
        s.flush()
        rows = [ConceptImageRow(concept_id=row.id, sha256=sha, role=role, file_name=fn) for sha, role, fn in images]
        s.add_all(rows)
        shas = sorted({sha for sha, _, _ in images})
        by_batch: dict[int, list[str]] = {}
        for sha, batch in s.execute(select(ImageRow.sha256, ImageRow.batch_id).where(ImageRow.sha256.in_(shas))
                                    .order_by(ImageRow.batch_id, ImageRow.sha256)):
            if sha not in by_batch.setdefault(batch, []):
                by_batch[batch].append(sha)
        parents = [Ref(Kind.BATCH, b) for b in sorted(by_batch)]
        lineage.record(s, Ref(Kind.CONCEPT, row.id), parents,
                       params={Ref(Kind.BATCH, b): {"images": v} for b, v in by_batch.items()})
        s.flush()
        info = _info(row, rows)
        info.replaced = old is not None
        return info


def get(store: Store, name: str) -> ConceptInfo:
    with store.session() as s:
        row = s.scalar(select(ConceptRow).where(ConceptRow.name == name))
        if row is None:
            known = list(s.scalars(select(ConceptRow.name).order_by(ConceptRow.name)))
            raise NotFoundError(f"no concept named {name!r}",
                                hint=f"concepts: {', '.join(known)}" if known else
                                "teach one with `visionloop concepts train --name NAME --positive IMAGES`")
        images = list(s.scalars(select(ConceptImageRow).where(ConceptImageRow.concept_id == row.id)
                                .order_by(ConceptImageRow.id)))
        return _info(row, images)


def list_all(store: Store) -> list[ConceptInfo]:
    with store.session() as s:
        rows = list(s.scalars(select(ConceptRow).order_by(ConceptRow.name)))
        images: dict[int, list[ConceptImageRow]] = {}
        for i in s.scalars(select(ConceptImageRow).order_by(ConceptImageRow.id)):
            images.setdefault(i.concept_id, []).append(i)
        return [_info(r, images.get(r.id, [])) for r in rows]


def delete_concept(store: Store, name: str) -> ConceptInfo:
    info = get(store, name)
    with store.session() as s, s.begin():
        lineage.forget(s, Ref(Kind.CONCEPT, info.id))
        s.execute(delete(ConceptImageRow).where(ConceptImageRow.concept_id == info.id))
        s.execute(delete(ConceptRow).where(ConceptRow.id == info.id))
    return info


def embedder_blob(store: Store, embedder: str) -> str | None:
    """The blob of an ONNX embedder a concept of this project already uses (None: not stored yet)."""
    with store.session() as s:
        for sha in s.scalars(select(ConceptRow.embedder_sha256).where(ConceptRow.embedder == embedder)
                             .order_by(ConceptRow.id)):
            if store.blobs.exists(sha):
                return sha
    return None
