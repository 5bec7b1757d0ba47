"""Lineage: the one writer (and reader) of `artifact ← input` edges.

Every artifact the project makes records where it came from, so a model can be traced back to the
exact images, annotations and recipe that made it:

    from visionloop.store import lineage
    from visionloop.store.lineage import Kind, Ref

    lineage.record(conn, Ref(Kind.VERSION, 3), [Ref(Kind.BATCH, 1), Ref(Kind.RECIPE, recipe_hash)],
                   params={Ref(Kind.RECIPE, recipe_hash): {"recipe": {...}}})
    lineage.parents(conn, Ref(Kind.VERSION, 3))     # [Edge(...), ...]
    lineage.ancestors(conn, Ref(Kind.MODEL, 7))     # the whole tree, nearest first

Kinds are an enumeration, never free text: an edge of an unknown kind is a bug and refused. `conn`
is a SQLAlchemy Connection or Session inside the caller's transaction: an artifact and its
lineage land together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select
from sqlalchemy.orm import Session

import visionloop
from visionloop.store.schema import LineageRow


class Kind(StrEnum):
    """What an artifact (or an input) of the project is."""

    BATCH = "batch"  # an import or fix batch: the images and annotations it brought
    RECIPE = "recipe"  # a version recipe, by its hash
    VERSION = "version"  # a dataset version
    MODEL = "model"  # a trained model in the registry
    EXPORT = "export"  # a model exported to a runtime format (ONNX, ...)
    EVALUATION = "evaluation"  # metrics and error events of a model on a version
    PREDICTIONS = "predictions"  # a log of production predictions
    CONCEPT = "concept"  # a concept taught from a few images
    PACKAGE = "package"  # a registry package (name==version) whose files a gallery model came from
    FILE = "file"  # a file a user brought (by its sha256), e.g. their own ONNX model


@dataclass(frozen=True)
class Ref:
    """One artifact: its kind and its id (a row id, or a hash for content-addressed things)."""

    kind: Kind
    id: str | int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))  # refuses an unknown kind
        object.__setattr__(self, "id", str(self.id))


@dataclass
class Edge:
    child: Ref
    parent: Ref
    params: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"child": {"kind": str(self.child.kind), "id": self.child.id},
                "parent": {"kind": str(self.parent.kind), "id": self.parent.id},
                "params": self.params, "code_version": self.code_version,
                "created_at": self.created_at.isoformat() if self.created_at else None}


def _conn(conn: Connection | Session) -> Connection:
    return conn.connection() if isinstance(conn, Session) else conn


def record(conn: Connection | Session, child: Ref, parents: Sequence[Ref], *,
           params: Mapping[Ref, dict[str, Any]] | None = None) -> int:
    """Record `child ← parent` for each parent (with that edge's parameters); the number of edges written."""
    rows = [{"child_kind": str(child.kind), "child_id": child.id, "parent_kind": str(p.kind), "parent_id": p.id,
             "params": dict((params or {}).get(p, {})), "code_version": visionloop.__version__}
            for p in parents]
    if rows:
        _conn(conn).execute(insert(LineageRow), rows)
    return len(rows)


def _edges(conn: Connection | Session, where: Any) -> list[Edge]:
    q = select(LineageRow.child_kind, LineageRow.child_id, LineageRow.parent_kind, LineageRow.parent_id,
               LineageRow.params, LineageRow.code_version, LineageRow.created_at).where(where).order_by(LineageRow.id)
    return [Edge(Ref(Kind(ck), ci), Ref(Kind(pk), pi), dict(params or {}), cv, at)
            for ck, ci, pk, pi, params, cv, at in _conn(conn).execute(q)]


def parents(conn: Connection | Session, child: Ref) -> list[Edge]:
    """The edges from `child` to what it was made of."""
    return _edges(conn, and_(LineageRow.child_kind == str(child.kind), LineageRow.child_id == child.id))


def children(conn: Connection | Session, parent: Ref) -> list[Edge]:
    """The edges to what was made from `parent`."""
    return _edges(conn, and_(LineageRow.parent_kind == str(parent.kind), LineageRow.parent_id == parent.id))


def ancestors(conn: Connection | Session, child: Ref, *, depth: int = 32) -> list[Edge]:
    """Every edge above `child`, breadth first (nearest first); each artifact is visited once."""
    out: list[Edge] = []
    seen = {child}
    frontier = [child]
    for _ in range(depth):
        if not frontier:
            break
        where = or_(*[and_(LineageRow.child_kind == str(r.kind), LineageRow.child_id == r.id) for r in frontier])
        edges = _edges(conn, where)
        out += edges
        frontier = []
        for e in edges:
            if e.parent not in seen:
                seen.add(e.parent)
                frontier.append(e.parent)
    return out


def forget(conn: Connection | Session, child: Ref) -> int:
    """Remove the edges of an artifact that is being deleted (its inputs stay); the number removed."""
    from sqlalchemy import delete

    result = _conn(conn).execute(delete(LineageRow).where(LineageRow.child_kind == str(child.kind),
                                                          LineageRow.child_id == child.id))
    return int(getattr(result, "rowcount", 0) or 0)
