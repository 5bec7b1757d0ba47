"""Selection strategies: what to label next, as pure numpy over scores and embeddings (no store, no model).

    u = entropy(probs)                                  # (N, C) class probabilities → (N,) uncertainty
    u = aggregate([box_uncertainty(s, "entropy") for s in per_image_box_scores], "max")
    pick = top_k(u, 10)                                 # the 10 most uncertain, ties to the lower index
    pick = k_center_greedy(emb, 10, centers=labelled)   # diversity (Sener & Savarese 2018)
    pick = hybrid(emb, u, 10, seed=0)                   # k-means clusters, the most uncertain of each
    pick = like(emb, queries, 10)                       # nearest by cosine to any query (targeted)
    pick = choose(Strategy.ENTROPY, 10, probabilities=probs)   # one entry point for all of them

Every function returns row indices in pick order and is deterministic: seeded where it draws, and ties
always go to the lower index (stable sorts, first argmax). Uncertainties are "higher = less sure":
least confidence 1 − max p, margin 1 − (p₁ − p₂), entropy −Σ p ln p (nats). A detector's box carries one
score s (its class's); it is read as a yes/no probability [s, 1 − s], so every measure peaks at s = 0.5,
and an image's boxes are aggregated by max, mean or sum (an image with no box scores 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np


class Strategy(StrEnum):
    RANDOM = "random"
    LEAST_CONFIDENCE = "least-confidence"
    MARGIN = "margin"
    ENTROPY = "entropy"
    KCENTER = "k-center"
    HYBRID = "hybrid"
    LIKE = "like"

    @property
    def uncertainty(self) -> bool:
        """Needs model scores."""
        return self in (Strategy.LEAST_CONFIDENCE, Strategy.MARGIN, Strategy.ENTROPY, Strategy.HYBRID)

    @property
    def embeddings(self) -> bool:
        """Needs image embeddings."""
        return self in (Strategy.KCENTER, Strategy.HYBRID, Strategy.LIKE)


class Aggregate(StrEnum):
    MAX = "max"
    MEAN = "mean"
    SUM = "sum"


#: the measure hybrid uses for "uncertain"
HYBRID_MEASURE = Strategy.ENTROPY


def _probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (N, C), got shape {p.shape}")
    if p.shape[1] == 1:  # one sigmoid output: yes/no
        p = np.concatenate([p, 1.0 - p], axis=1)
    return p


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 − the top probability, per row."""
    return 1.0 - _probs(probs).max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 − (top probability − second), per row: 1 when the two best tie."""
    p = np.sort(_probs(probs), axis=1)
    return 1.0 - (p[:, -1] - p[:, -2])


def entropy(probs: np.ndarray) -> np.ndarray:
    """−Σ p ln p per row (nats), with 0 ln 0 = 0."""
    p = _probs(probs)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)


MEASURES = {Strategy.LEAST_CONFIDENCE: least_confidence, Strategy.MARGIN: margin, Strategy.ENTROPY: entropy}


def uncertainty(probs: np.ndarray, measure: Strategy | str) -> np.ndarray:
    m = Strategy(measure)
    if m not in MEASURES:
        raise ValueError(f"{m} is not an uncertainty measure (least-confidence, margin, entropy)")
    return MEASURES[m](probs)


def box_uncertainty(scores: np.ndarray, measure: Strategy | str) -> np.ndarray:
    """Per-box uncertainty of detection scores s, each read as the yes/no distribution [s, 1 − s]."""
    s = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), 0.0, 1.0)
    return uncertainty(np.stack([s, 1.0 - s], axis=1), measure) if s.size else np.zeros(0)


def aggregate(per_image: Sequence[np.ndarray], how: Aggregate | str) -> np.ndarray:
    """One score per image from its boxes' scores: max, mean or sum; an image with no box scores 0."""
    how = Aggregate(how)
    fn = {Aggregate.MAX: np.max, Aggregate.MEAN: np.mean, Aggregate.SUM: np.sum}[how]
    return np.asarray([float(fn(u)) if len(u) else 0.0 for u in per_image], dtype=np.float64)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first; ties go to the lower index."""
    s = np.asarray(scores, dtype=np.float64)
    return np.argsort(-s, kind="stable")[:max(0, k)]


def random_pick(n: int, k: int, *, seed: int = 0) -> np.ndarray:
    """k distinct indices of range(n), drawn with `seed`."""
    return np.random.default_rng(seed).permutation(n)[:max(0, min(k, n))]


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), clipped at 0."""
    d = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.maximum(d, 0.0)


def k_center_greedy(emb: np.ndarray, k: int, *, centers: np.ndarray | None = None) -> np.ndarray:
    """Greedy k-center (Sener & Savarese 2018): each pick is the point farthest from every center so far.

    `centers` are embeddings already covered (the labelled images); without them the first pick is the point
    farthest from the mean. Ties go to the lower index."""
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    k = max(0, min(k, n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if centers is not None and len(centers):
        nearest = _sq_dist(x, np.asarray(centers, dtype=np.float64)).min(axis=1)
    else:
        nearest = _sq_dist(x, x.mean(axis=0, keepdims=True))[:, 0]
    picks: list[int] = []
    for _ in range(k):
        i = int(np.argmax(nearest))  # the first of equal maxima
        picks.append(i)
        nearest = np.minimum(nearest, _sq_dist(x, x[i:i + 1])[:, 0])
        nearest[picks] = -1.0  # never again, even when every distance is 0
    return np.asarray(picks, dtype=np.int64)


def kmeans(emb: np.ndarray, k: int, *, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Cluster labels (N,) by Lloyd's k-means from a seeded k-means++ start."""
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centers = [x[int(rng.integers(n))]]
    d = _sq_dist(x, centers[0][None])[:, 0]
    for _ in range(1, k):
        total = d.sum()
        i = int(rng.choice(n, p=d / total)) if total > 0 else int(np.argmax(d))
        centers.append(x[i])
        d = np.minimum(d, _sq_dist(x, x[i:i + 1])[:, 0])
    c = np.stack(centers)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(iters):
        new = np.argmin(_sq_dist(x, c), axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return labels


def hybrid(emb: np.ndarray, uncert: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Uncertainty within diverse clusters: k-means the embeddings into k clusters, take the most uncertain
    image of each, most uncertain first; when clusters come out fewer than k, the most uncertain of the rest
    fill up. Ties go to the lower index."""
    u = np.asarray(uncert, dtype=np.float64)
    n = len(u)
    k = max(0, min(k, n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    labels = kmeans(emb, k, seed=seed)
    order = top_k(u, n)
    picks: list[int] = []
    seen: set[int] = set()
    for i in order:  # the first member of a cluster met in uncertainty order is its most uncertain
        if int(labels[i]) not in seen:
            seen.add(int(labels[i]))
            picks.append(int(i))
    taken = set(picks)
    picks += [int(i) for i in order if int(i) not in taken][:k - len(picks)]
    return np.asarray(picks[:k], dtype=np.int64)


def cosine_to(emb: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each row's cosine similarity to its nearest query (N,)."""
    x = np.asarray(emb, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return (x @ q.T).max(axis=1)


def like(emb: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Targeted selection: the k rows most similar (cosine) to any of the query embeddings."""
    if not len(queries):
        raise ValueError("`like` needs at least one query embedding")
    return top_k(cosine_to(emb, queries), k)


def choose(strategy: Strategy | str, k: int, *, n: int | None = None, uncertainty: np.ndarray | None = None,
           embeddings: np.ndarray | None = None, centers: np.ndarray | None = None,
           queries: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The indices one strategy picks. `uncertainty` is per row (already measured and aggregated) for
    least-confidence, margin, entropy and hybrid; `embeddings` per row for k-center, hybrid and like;
    `centers` (k-center) the labelled rows' embeddings; `queries` (like) the targets' embeddings."""
    s = Strategy(strategy)
    if s == Strategy.RANDOM:
        size = n if n is not None else len(uncertainty if uncertainty is not None else embeddings)  # type: ignore[arg-type]
        return random_pick(size, k, seed=seed)
    if s.uncertainty and uncertainty is None:
        raise ValueError(f"{s} needs uncertainty scores")
    if s.embeddings and embeddings is None:
        raise ValueError(f"{s} needs embeddings")
    if s == Strategy.KCENTER:
        return k_center_greedy(embeddings, k, centers=centers)  # type: ignore[arg-type]
    if s == Strategy.HYBRID:
        return hybrid(embeddings, uncertainty, k, seed=seed)  # type: ignore[arg-type]
    if s == Strategy.LIKE:
        if queries is None:
            raise ValueError("like needs query embeddings")
        return like(embeddings, queries, k)  # type: ignore[arg-type]
    return top_k(uncertainty, k)  # type: ignore[arg-type]
