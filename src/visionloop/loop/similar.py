"""Similarity over the project's images: the embedding job, the vector index, `similar` and concept `search`.

    emb = (name, blob)                                   # an ONNX embedder stored in the project
    embed_project(store, emb)                            # incremental: only images not embedded yet
    similar(store, emb, "raccoon-1.jpg", k=20)           # a project image (id or file name) or an image file
    search_concept(store, "raccoon", k=20)               # ranked by the concept's score on every image

Embedding runs through the runtime pool (batches of decoded images in flight, never the whole project),
on ONNX Runtime; vectors are stored per image blob and embedder (`store.embeddings`). Nearest neighbours
come from a faiss HNSW index over cosine (inner product of unit vectors); below `EXACT_BELOW` vectors a
numpy matrix product is exact and faster than building a graph (bench/similar.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import NotFoundError, VisionLoopError
from visionloop.store import embeddings as vectors_store
from visionloop.store import tags as tag_store
from visionloop.store.models import blob_file
from visionloop.store.project import Store

#: below this many vectors, search is an exact numpy product (faster than building an index, and exact)
EXACT_BELOW = 20_000
BATCH = 16  # images per pool job


# ---- the embedding job --------------------------------------------------------------------------------

_EMBEDDER: Any = None


def _init_worker(model_path: str, threads: int) -> None:
    global _EMBEDDER
    from visionloop.infer.embed import OnnxEmbedder

    _EMBEDDER = OnnxEmbedder(model_path, threads=threads)


def _decode(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VisionLoopError("cannot decode a stored image", hint="check the project with `visionloop health`")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _embed_job(job: tuple[str, list[tuple[str, str]]]) -> dict[str, np.ndarray]:
    """(blob root, [(sha, local path or '')]) → {sha: vector}; remote blobs arrive as cached files."""
    _, items = job
    images = [_decode(Path(p).read_bytes()) for _, p in items]
    vecs = _EMBEDDER.embed(images, batch=len(images))
    return {sha: vecs[i] for i, (sha, _) in enumerate(items)}


@dataclass
class EmbedResult:
    embedder: str
    images: int  # project images
    blobs: int  # distinct image contents
    embedded: int  # embedded now
    kept: int  # already embedded before
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "images": self.images, "blobs": self.blobs, "embedded": self.embedded,
                "kept": self.kept, "seconds": round(self.seconds, 3)}


def embed_project(store: Store, embedder: tuple[str, str], *, workers: int | None = None,
                  batch: int = BATCH) -> EmbedResult:
    """Embed every project image not embedded yet under `embedder` (name, ONNX blob); stored as each batch ends."""
    t0 = time.perf_counter()
    name, sha = embedder
    images = tag_store.images(store)
    shas = list(dict.fromkeys(im.sha256 for im in images))
    todo = vectors_store.missing(store, name, shas)
    n_workers = max(1, min(workers if workers is not None else (os.cpu_count() or 1), 4,
                           (len(todo) + batch - 1) // batch))
    jobs = [("", [(h, blob_file(store, h)) for h in todo[i:i + batch]]) for i in range(0, len(todo), batch)]
    added = 0

    if todo:
        model = blob_file(store, sha)
        threads = max(1, (os.cpu_count() or 1) // n_workers)
        # results come back in order; write each job's vectors before holding the next (bounded memory)
        from visionloop.runtime.pool import Pool

        if n_workers > 1:
            # torch (loaded when the default embedder was exported just now) leaves native thread pools whose
            # locks a forked child can inherit held: a fork then hung in the worker; forkserver starts clean
            import multiprocessing
            import sys

            ctx = multiprocessing.get_context("forkserver") if "torch" in sys.modules and \
                "forkserver" in multiprocessing.get_all_start_methods() else None
            with Pool(n_workers, initializer=_init_worker, initargs=(model, threads), name="embeddings",
                      context=ctx) as pool:
                for out in pool.imap(_embed_job, jobs):
                    added += vectors_store.put(store, name, out)
        else:
            _init_worker(model, threads)
            for job in jobs:
                added += vectors_store.put(store, name, _embed_job(job))
    return EmbedResult(name, len(images), len(shas), added, len(shas) - len(todo), time.perf_counter() - t0)


# ---- the index ----------------------------------------------------------------------------------------

class VectorIndex:
    """k nearest unit vectors by cosine: exact numpy below `exact_below`, else a faiss HNSW graph (M=16,
    efConstruction 128, efSearch `ef`)."""

    def __init__(self, matrix: np.ndarray, *, exact_below: int = EXACT_BELOW, ef: int = 128) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.exact = len(self.matrix) < exact_below
        self._index: Any = None
        if not self.exact:
            import faiss

            self._index = faiss.IndexHNSWFlat(self.matrix.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = 128
            self._index.hnsw.efSearch = ef
            self._index.add(self.matrix)

    def __len__(self) -> int:
        return len(self.matrix)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, similarities) of the k nearest, best first; fewer when the index is smaller."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        k = min(k, len(self.matrix))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.exact:
            sims = self.matrix @ q
            top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
            top = top[np.lexsort((top, -sims[top]))]  # by similarity, ties by row: deterministic
            return top.astype(np.int64), sims[top]
        sims, rows = self._index.search(q[None, :], k)
        keep = rows[0] >= 0  # faiss pads with -1 when the graph yields fewer
        return rows[0][keep].astype(np.int64), sims[0][keep].astype(np.float32)


# ---- similar and search -------------------------------------------------------------------------------

@dataclass
class Hit:
    image_id: int
    file_name: str
    sha256: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "file_name": self.file_name, "sha256": self.sha256,
                "score": round(self.score, 6)}


@dataclass
class SearchResult:
    query: dict[str, Any]
    embedder: str
    hits: list[Hit] = field(default_factory=list)
    embedded: int = 0  # images embedded on the way (the incremental job)

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "embedder": self.embedder, "embedded": self.embedded,
                "hits": [h.to_json() for h in self.hits]}


def find_image(store: Store, ident: str) -> tag_store.ImageInfo:
    """A project image by id or file name (a unique suffix of the name too, e.g. `raccoon-1.jpg`)."""
    images = tag_store.images(store)
    if ident.isdigit():
        for im in images:
            if im.id == int(ident):
                return im
    exact = [im for im in images if im.file_name == ident]
    found = exact or [im for im in images if im.file_name.rsplit("/", 1)[-1] == ident.rsplit("/", 1)[-1]]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise VisionLoopError(f"{len(found)} project images are named {ident!r}",
                              hint="pass the image id, or its full name with the split folder")
    raise NotFoundError(f"no project image {ident!r}, and no such file",
                        hint="pass a project image's id or file name, or the path of an image file")


def _expand(store: Store, shas: list[str], scores: np.ndarray, k: int, skip: set[str]) -> list[Hit]:
    by_sha: dict[str, list[tag_store.ImageInfo]] = {}
    for im in tag_store.images(store):
        by_sha.setdefault(im.sha256, []).append(im)
    hits: list[Hit] = []
    for h, s in zip(shas, scores, strict=True):
        if h in skip:
            continue
        hits += [Hit(im.id, im.file_name, h, float(s)) for im in sorted(by_sha.get(h, []), key=lambda i: i.id)]
    return hits[:k]


def vectors_of(store: Store, embedder: tuple[str, str], *, workers: int | None = None
               ) -> tuple[list[str], np.ndarray, int]:
    """Every project image's vector (embedding the new ones first): (hashes, matrix, embedded now)."""
    done = embed_project(store, embedder, workers=workers)
    shas, matrix = vectors_store.load(store, embedder[0])
    return shas, matrix, done.embedded


def similar(store: Store, embedder: tuple[str, str], query: str | Path | bytes, *, k: int = 20,
            workers: int | None = None) -> SearchResult:
    """The k project images nearest to a project image (id or name), an image file, or uploaded image bytes."""
    if k < 1:
        raise VisionLoopError(f"k must be at least 1, not {k}", hint="pass -k 20")
    shas, matrix, added = vectors_of(store, embedder, workers=workers)
    skip: set[str] = set()
    if isinstance(query, bytes):
        from visionloop.infer.embed import OnnxEmbedder

        vec = OnnxEmbedder(blob_file(store, embedder[1])).embed([_decode(query)])[0]
        desc: dict[str, Any] = {"upload": True}
    elif Path(query).is_file():
        from visionloop.infer.embed import OnnxEmbedder, read_rgb

        vec = OnnxEmbedder(blob_file(store, embedder[1])).embed([read_rgb(query)])[0]
        desc = {"file": str(query)}
    else:
        im = find_image(store, str(query))
        vec = matrix[shas.index(im.sha256)]
        skip = {im.sha256}  # the image itself (and its byte-identical copies) is not an answer
        desc = {"image_id": im.id, "file_name": im.file_name}
    rows, sims = VectorIndex(matrix).search(vec, k + len(skip))
    return SearchResult(desc, embedder[0], _expand(store, [shas[r] for r in rows], sims, k, skip), added)


def search_concept(store: Store, name: str, *, k: int = 20, workers: int | None = None) -> SearchResult:
    """Project images ranked by a concept's score (its logistic probability or prototype similarity)."""
    from visionloop.infer.concepts import ConceptHead
    from visionloop.store import concepts as registry

    if k < 1:
        raise VisionLoopError(f"k must be at least 1, not {k}", hint="pass -k 20")
    info = registry.get(store, name)
    shas, matrix, added = vectors_of(store, (info.embedder, info.embedder_sha256), workers=workers)
    if not shas:
        return SearchResult({"concept": name}, info.embedder, [], added)
    scores = ConceptHead.from_json(info.head).score(matrix)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return SearchResult({"concept": name, "kind": info.kind, "threshold": info.threshold}, info.embedder,
                        _expand(store, [shas[i] for i in order], scores[order], k, set()), added)
