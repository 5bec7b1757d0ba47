"""Concepts on embeddings (numpy; no torch, no store): scoring taught concepts, and fitting them.

A concept is a yes/no question about a whole image, answered on its unit-norm embedding:

- `logistic` (positives and negatives): p = sigmoid(w·x + b), yes when p ≥ 0.5.
- `prototype` (positives only): s = cos(x, mean of the positives), yes when s ≥ the threshold
  taken from the positives' own spread (leave-one-out similarities, see `fit_prototype`).

Several concepts are independent (multi-label): each answers on its own.

    head = fit(pos_vectors, neg_vectors)           # ConceptHead, no knobs
    head.score(vectors)                            # (N,) scores; head.decide(vectors) → (N,) bools
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError

#: L2 penalty of the logistic regression, per training image (features are unit vectors)
RIDGE = 1e-3
#: the prototype threshold: mean − K·std of the positives' leave-one-out similarities, and never above their minimum
SPREAD_K = 3.0


@dataclass
class ConceptHead:
    kind: str  # logistic | prototype
    weights: np.ndarray  # logistic: w (D,); prototype: the unit-norm mean (D,)
    bias: float = 0.0
    threshold: float = 0.5  # on the score: probability (logistic) or cosine similarity (prototype)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def score(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise VisionLoopError(f"embeddings of size {x.shape[-1]} do not fit a concept of size {self.dim}",
                                  hint="predict with the embedder the concept was trained with")
        z = x @ self.weights.astype(np.float64)
        if self.kind == "logistic":
            return 1.0 / (1.0 + np.exp(-(z + self.bias)))
        return z

    def decide(self, x: np.ndarray) -> np.ndarray:
        return self.score(x) >= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": [float(v) for v in self.weights], "bias": float(self.bias),
                "threshold": float(self.threshold), "stats": self.stats}

    @classmethod
    def from_json(cls, js: dict[str, Any]) -> ConceptHead:
        return cls(str(js["kind"]), np.asarray(js["weights"], dtype=np.float32), float(js.get("bias", 0.0)),
                   float(js["threshold"]), dict(js.get("stats", {})))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def fit(positives: np.ndarray, negatives: np.ndarray | None = None) -> ConceptHead:
    """Logistic regression when there are negatives, else a prototype. Deterministic."""
    if negatives is not None and len(negatives):
        return fit_logistic(positives, negatives)
    return fit_prototype(positives)


def fit_prototype(positives: np.ndarray) -> ConceptHead:
    """The unit mean of the positives; threshold = min(mean − 3·std, min) of each positive's similarity to the
    mean of the others (leave-one-out: a positive's own vector does not inflate its similarity)."""
    x = _unit(positives)
    n = len(x)
    if n < 2:
        raise VisionLoopError("a concept without negatives needs at least 2 positive images",
                              hint="add more positives (5-10 work well), or negatives with --negative")
    total = x.sum(axis=0)
    loo = np.array([float(x[i] @ _unit(total - x[i])) for i in range(n)])
    threshold = min(float(loo.mean() - SPREAD_K * loo.std()), float(loo.min()))
    proto = _unit(total)
    return ConceptHead("prototype", proto.astype(np.float32), 0.0, threshold,
                       {"positives": n, "loo_similarity_mean": round(float(loo.mean()), 6),
                        "loo_similarity_min": round(float(loo.min()), 6)})


def fit_logistic(positives: np.ndarray, negatives: np.ndarray, *, iters: int = 50) -> ConceptHead:
    """Class-balanced L2-regularised logistic regression, solved exactly by Newton's method in the span of the
    training vectors (the optimum lies there: w = V c with X = U S Vᵀ), so it costs (n×n), not (D×D)."""
    pos, neg = _unit(positives), _unit(negatives)
    if len(pos) < 1:
        raise VisionLoopError("a concept needs at least 1 positive image", hint="pass images with --positive")
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    sw = np.where(y == 1, len(x) / (2 * len(pos)), len(x) / (2 * len(neg)))  # balanced classes
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = s > s[0] * 1e-9
    v = vt[keep].T  # (D, r)
    z = np.concatenate([x @ v, np.ones((len(x), 1))], axis=1)  # (n, r+1); the last column is the bias
    lam = RIDGE * len(x)
    reg = np.full(z.shape[1], lam)
    reg[-1] = 0.0  # the bias is not penalised
    c = np.zeros(z.shape[1])
    done = 0
    for _ in range(iters):
        done += 1
        p = 1.0 / (1.0 + np.exp(-(z @ c)))
        grad = z.T @ (sw * (p - y)) + reg * c
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(reg) + np.eye(len(c)) * 1e-12
        step = np.linalg.solve(hess, grad)
        c -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    w = v @ c[:-1]
    p = 1.0 / (1.0 + np.exp(-(x @ w + c[-1])))
    train_acc = float(((p >= 0.5) == (y == 1)).mean())
    return ConceptHead("logistic", w.astype(np.float32), float(c[-1]), 0.5,
                       {"positives": int(len(pos)), "negatives": int(len(neg)), "newton_iterations": done,
                        "train_accuracy": round(train_acc, 6)})


@dataclass
class ConceptAnswer:
    concept: str
    score: float
    match: bool

    def to_json(self) -> dict[str, Any]:
        return {"concept": self.concept, "score": round(self.score, 6), "match": self.match}


@dataclass
class ConceptPrediction:
    file_name: str
    answers: list[ConceptAnswer]

    @property
    def matches(self) -> list[str]:
        return [a.concept for a in self.answers if a.match]

    def to_json(self) -> dict[str, Any]:
        return {"file_name": self.file_name, "matches": self.matches, "concepts": [a.to_json() for a in self.answers]}


def predict(heads: dict[str, ConceptHead], vectors: np.ndarray, files: list[str | Path]) -> list[ConceptPrediction]:
    """Each concept answers independently on each image's embedding (multi-label)."""
    scored = {name: (h.score(vectors), h.threshold) for name, h in heads.items()}
    return [ConceptPrediction(Path(f).name, [ConceptAnswer(name, float(s[i]), bool(s[i] >= t))
                                             for name, (s, t) in scored.items()])
            for i, f in enumerate(files)]


def predict_files(embedder: str | Path | bytes, heads: dict[str, ConceptHead], paths: list[str | Path], *,
                  threads: int | None = None) -> list[ConceptPrediction]:
    """Embed image files (files or folders) with an ONNX embedder and let each concept answer."""
    from visionloop.infer.embed import OnnxEmbedder, image_files

    files = image_files(paths)
    emb = OnnxEmbedder(embedder, threads=threads)
    vectors = emb.embed_files(files)
    return predict(heads, vectors, [str(f) for f in files])
