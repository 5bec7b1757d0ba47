"""Embeddings: the one writer of `embedding` rows (one unit-norm float32 vector per image blob and embedder).

    from visionloop.store import embeddings
    embeddings.missing(store, "efficientnet_lite0.imagenet@224", shas)   # the blobs not embedded yet
    embeddings.put(store, embedder, {sha: vector, ...})                  # one transaction
    shas, matrix = embeddings.load(store, embedder)                      # (N,) hashes, (N, D) float32
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from sqlalchemy import select

from visionloop.store.project import Store
from visionloop.store.schema import EmbeddingRow

CHUNK = 500  # hashes per IN (...) query


def missing(store: Store, embedder: str, shas: Iterable[str]) -> list[str]:
    """The hashes (in the order given, once each) that have no embedding under `embedder`."""
    want = list(dict.fromkeys(shas))
    have: set[str] = set()
    with store.session() as s:
        for i in range(0, len(want), CHUNK):
            part = want[i:i + CHUNK]
            have.update(s.scalars(select(EmbeddingRow.sha256).where(EmbeddingRow.embedder == embedder,
                                                                     EmbeddingRow.sha256.in_(part))))
    return [h for h in want if h not in have]


def put(store: Store, embedder: str, vectors: Mapping[str, np.ndarray]) -> int:
    """Store vectors (an existing one for the same blob and embedder is kept); returns how many were added."""
    new = missing(store, embedder, vectors)
    with store.session() as s, s.begin():
        s.add_all(EmbeddingRow(sha256=h, embedder=embedder, dim=int(vectors[h].shape[-1]),
                               vector=np.asarray(vectors[h], dtype="<f4").tobytes()) for h in new)
    return len(new)


def load(store: Store, embedder: str, shas: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The stored vectors under `embedder` (all, or those of `shas`), ordered by hash."""
    q = select(EmbeddingRow.sha256, EmbeddingRow.vector).where(EmbeddingRow.embedder == embedder)
    rows: list[tuple[str, bytes]] = []
    with store.session() as s:
        if shas is None:
            rows = [(h, v) for h, v in s.execute(q)]
        else:
            want = list(dict.fromkeys(shas))
            for i in range(0, len(want), CHUNK):
                rows += [(h, v) for h, v in s.execute(q.where(EmbeddingRow.sha256.in_(want[i:i + CHUNK])))]
    rows.sort()
    if not rows:
        return [], np.zeros((0, 0), np.float32)
    return [h for h, _ in rows], np.stack([np.frombuffer(v, dtype="<f4") for _, v in rows]).astype(np.float32)
