"""Teach a concept in seconds: a yes/no head on frozen, L2-normalised embeddings of a few images.

    result = train_concept(store, "raccoon", positives=["crops/raccoon"], negatives=["crops/background"])
    result.to_json()

No knobs: with negatives a class-balanced logistic regression, without them a prototype (the positives'
mean) with a threshold from their spread (`visionloop.infer.concepts`). Embeddings come from the ONNX
embedder stored in the project: the frozen ImageNet EfficientNet-Lite0's pooled features, exported from
torch once per project (the only step that needs torch; training and prediction then run on ONNX Runtime,
1.75× faster than torch eager on 20 crops here, bench/concepts.py), or a user's own ONNX embedder.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.infer import concepts as heads
from visionloop.infer.embed import OnnxEmbedder, image_files
from visionloop.store import Store
from visionloop.store import concepts as registry
from visionloop.store.blobs import sha256_bytes
from visionloop.store.concepts import ConceptInfo
from visionloop.store.models import blob_file

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "efficientnet_lite0.imagenet@224"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class ConceptTrainResult:
    concept: ConceptInfo
    seconds: float
    embed_seconds: float
    exported_embedder: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.concept.to_json(), "seconds": round(self.seconds, 3),
                "embed_seconds": round(self.embed_seconds, 3), "exported_embedder": self.exported_embedder}


def check_name(name: str) -> str:
    if not NAME.match(name) or name == "all":
        raise VisionLoopError(f"invalid concept name {name!r}",
                              hint="use letters, digits, _ . - (up to 64, not `all`), e.g. --name raccoon")
    return name


def default_embedder(store: Store) -> tuple[str, str, bool]:
    """(name, blob, exported now): the project's stored ONNX of the default embedder, exported on first use."""
    sha = registry.embedder_blob(store, DEFAULT_EMBEDDER)
    if sha is not None:
        return DEFAULT_EMBEDDER, sha, False
    from visionloop.models.embedder import Embedder, export_embedder

    log.info("exporting the default embedder to ONNX (once per project)")
    data = export_embedder(Embedder.create())
    return DEFAULT_EMBEDDER, store.blobs.put(data), True


def user_embedder(store: Store, path: Path) -> tuple[str, str]:
    if not path.is_file():
        raise VisionLoopError("embedder not found", path=path, hint="pass an ONNX file with --embedder")
    data = path.read_bytes()
    OnnxEmbedder(data)  # refuses what cannot serve as an embedder, naming the file
    sha = sha256_bytes(data)
    store.blobs.put(data, sha)
    return f"onnx:{path.name}@{sha[:12]}", sha


def train_concept(store: Store, name: str, positives: list[str | Path], negatives: list[str | Path] | None = None,
                  *, embedder: str | Path | None = None, threads: int | None = None) -> ConceptTrainResult:
    t0 = time.perf_counter()
    check_name(name)
    pos_files = image_files(positives)
    neg_files = image_files(negatives or [])
    pos_data = [f.read_bytes() for f in pos_files]
    neg_data = [f.read_bytes() for f in neg_files]
    pos_sha = [sha256_bytes(d) for d in pos_data]
    neg_sha = [sha256_bytes(d) for d in neg_data]
    both = set(pos_sha) & set(neg_sha)
    if both:
        f = next(p for p, s in zip(pos_files, pos_sha, strict=True) if s in both)
        raise VisionLoopError("the same image is both a positive and a negative", path=f,
                              hint="remove it from --positive or from --negative")
    if embedder is None:
        emb_name, emb_sha, exported = default_embedder(store)
    else:
        (emb_name, emb_sha), exported = user_embedder(store, Path(embedder)), False
    emb = OnnxEmbedder(blob_file(store, emb_sha), threads=threads)
    te = time.perf_counter()
    vp = emb.embed_files(pos_files)
    vn = emb.embed_files(neg_files) if neg_files else None
    embed_seconds = time.perf_counter() - te
    head = heads.fit(vp, vn)
    images = []
    for files, datas, shas, role in ((pos_files, pos_data, pos_sha, "positive"),
                                     (neg_files, neg_data, neg_sha, "negative")):
        for f, d, s in zip(files, datas, shas, strict=True):
            store.blobs.put(d, s)
            images.append((s, role, f.name))
    info = registry.save(store, name=name, kind=head.kind, embedder=emb_name, embedder_sha256=emb_sha,
                         dim=head.dim, threshold=head.threshold, head=head.to_json(), images=images)
    return ConceptTrainResult(info, time.perf_counter() - t0, embed_seconds, exported)
