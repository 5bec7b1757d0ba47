"""Selection strategies: what to label next, as pure numpy over scores and embeddings (no store, no model).

    u = entropy(probs)                                  # (N, C) class probabilities → (N,) uncertainty
    u = aggregate([box_uncertainty(s, "entropy") for s in per_image_box_scores], "max")
    pick = top_k(u, 10)                                 # the 10 most uncertain, ties to the lower index
    pick = k_center_greedy(emb, 10, centers=labelled)   # diversity (Sener & Savarese 2018)
    pick = hybrid(emb, u, 10, seed=0)                   # k-means clusters, the most uncertain of each
    pick = like(emb, queries, 10)                       # nearest by cosine to any query (targeted)
    pick = choose(Strategy.ENTROPY, 10, probabilities=probs)   # one entry point for all of them
    u = bald(member_probs)                              # (K, N, C) a committee's probabilities → (N,)
    u = aggregate([cluster_disagreement(box_clusters(b, s, c)) for b, s, c in images], "max")   # detectors

Every function returns row indices in pick order and is deterministic: seeded where it draws, and ties
always go to the lower index (stable sorts, first argmax). Uncertainties are "higher = less sure":
least confidence 1 − max p, margin 1 − (p₁ − p₂), entropy −Σ p ln p (nats). A detector's box carries one
score s (its class's); it is read as a yes/no probability [s, 1 − s], so every measure peaks at s = 0.5,
and an image's boxes are aggregated by max, mean or sum (an image with no box scores 0).

Committee disagreement (several models, "query by committee"; K ≥ 2 members that share task and classes):
classifiers: vote entropy (each member votes its top class) and BALD-style mutual information (the entropy of
the members' mean distribution minus the members' mean entropy); detectors: the members' boxes are matched
into clusters (`box_clusters`) and each cluster scored (`cluster_disagreement`, `cluster_vote_entropy`,
`cluster_bald`), aggregated per image by max, mean or sum. MC-dropout is not offered: the exported ONNX graphs
are traced in eval mode (and visionloop's networks have no dropout layers), so every pass is identical.
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
    DISAGREEMENT = "disagreement"
    VOTE_ENTROPY = "vote-entropy"
    BALD = "bald"

    @property
    def uncertainty(self) -> bool:
        """Needs model scores."""
        return self in (Strategy.LEAST_CONFIDENCE, Strategy.MARGIN, Strategy.ENTROPY, Strategy.HYBRID) or self.committee

    @property
    def committee(self) -> bool:
        """Needs several models' scores (disagreement between them)."""
        return self in (Strategy.DISAGREEMENT, Strategy.VOTE_ENTROPY, Strategy.BALD)

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


def _members(member_probs: np.ndarray) -> np.ndarray:
    p = np.asarray(member_probs, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"a committee's probabilities must be (K ≥ 2, N, C), got shape {p.shape}")
    if p.shape[2] == 1:  # one sigmoid output: yes/no
        p = np.concatenate([p, 1.0 - p], axis=2)
    return p


def _entropy_last(p: np.ndarray) -> np.ndarray:
    """−Σ p ln p over the last axis (nats), with 0 ln 0 = 0."""
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)


def vote_entropy(member_probs: np.ndarray) -> np.ndarray:
    """Vote entropy per row of a committee's probabilities (K, N, C): each member votes its top class (the first
    of equal maxima), V(c) = votes for c / K, and VE = −Σ_c V(c) ln V(c) (nats): 0 when all agree, ln K at most."""
    p = _members(member_probs)
    k, n, c = p.shape
    votes = np.zeros((n, c))
    for top in p.argmax(axis=2):  # (N,) per member
        votes[np.arange(n), top] += 1.0
    return _entropy_last(votes / k)


def bald(member_probs: np.ndarray) -> np.ndarray:
    """BALD-style mutual information per row of a committee's probabilities (K, N, C), in nats:
    I = H(p̄) − (1/K) Σ_k H(p_k), with p̄ = (1/K) Σ_k p_k and H(p) = −Σ_c p_c ln p_c (Houlsby et al. 2011).
    The same number is the members' mean KL divergence to the consensus, (1/K) Σ_k KL(p_k ‖ p̄): 0 when all
    members say the same, high when each is sure of a different class."""
    p = _members(member_probs)
    return np.maximum(_entropy_last(p.mean(axis=0)) - _entropy_last(p).mean(axis=0), 0.0)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box `a` (4,) with boxes `b` (M, 4)."""
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0.0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0.0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


#: the IoU at which two members' boxes (of one class) are the same object
MATCH_IOU = 0.5


def box_clusters(boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
                 iou: float = MATCH_IOU) -> np.ndarray:
    """Match K detectors' boxes on one image into objects: (n_clusters, K) scores, 0 where a member has no box.

    Greedy by score: all members' boxes in descending score (ties: the lower member, then the lower box index);
    the first box not yet used seeds a cluster, and every other member adds its unused box of the same class with
    the highest IoU with the seed (ties: the lower box index), if that IoU is ≥ `iou`. So a cluster holds at most
    one box per member; the seed's member is the one with the highest-scoring box. Clusters come in seed order."""
    k = len(boxes)
    b = [np.asarray(x, dtype=np.float64).reshape(-1, 4) for x in boxes]
    s = [np.asarray(x, dtype=np.float64).reshape(-1) for x in scores]
    c = [np.asarray(x).reshape(-1).astype(np.int64) for x in labels]
    used = [np.zeros(len(x), dtype=bool) for x in s]
    order = sorted((-float(s[m][i]), m, i) for m in range(k) for i in range(len(s[m])))
    rows: list[np.ndarray] = []
    for _, m, i in order:
        if used[m][i]:
            continue
        used[m][i] = True
        row = np.zeros(k)
        row[m] = s[m][i]
        for o in range(k):
            if o == m or not len(s[o]):
                continue
            ok = (~used[o]) & (c[o] == c[m][i])
            overlap = np.where(ok, _iou(b[m][i], b[o]), -1.0)
            j = int(np.argmax(overlap))  # the first of equal maxima
            if overlap[j] >= iou:
                used[o][j] = True
                row[o] = s[o][j]
        rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, k))


def cluster_disagreement(clusters: np.ndarray) -> np.ndarray:
    """Per cluster of `box_clusters` (n, K): d = (1 − m/K) + Var(found scores), where m is how many members found
    the object (score > 0) and Var the population variance (ddof 0) of those m scores (0 when m = 1). The first
    term (0 … 1 − 1/K) says who missed it; the second (0 … 0.25) how far the finders' confidences differ."""
    x = np.asarray(clusters, dtype=np.float64)
    if not len(x):
        return np.zeros(0)
    found = x > 0
    m = found.sum(axis=1)
    mean = np.where(found, x, 0.0).sum(axis=1) / m
    var = np.where(found, (x - mean[:, None]) ** 2, 0.0).sum(axis=1) / m
    return (1.0 - m / x.shape[1]) + var


def _binary(s: np.ndarray) -> np.ndarray:
    return np.stack([s, 1.0 - s], axis=-1)


def cluster_vote_entropy(clusters: np.ndarray) -> np.ndarray:
    """Per cluster (n, K): vote entropy of "found it" vs "missed it", −(v ln v + (1 − v) ln(1 − v)), v = m/K."""
    x = np.asarray(clusters, dtype=np.float64)
    return _entropy_last(_binary((x > 0).mean(axis=1))) if len(x) else np.zeros(0)


def cluster_bald(clusters: np.ndarray) -> np.ndarray:
    """Per cluster (n, K): mutual information of the members' yes/no readings [s_k, 1 − s_k] (s_k = 0 for a member
    that missed it): H2(mean s) − mean H2(s_k), H2 the binary entropy in nats."""
    x = np.clip(np.asarray(clusters, dtype=np.float64), 0.0, 1.0)
    if not len(x):
        return np.zeros(0)
    return np.maximum(_entropy_last(_binary(x.mean(axis=1))) - _entropy_last(_binary(x)).mean(axis=1), 0.0)


CLUSTER_MEASURES = {Strategy.DISAGREEMENT: cluster_disagreement, Strategy.VOTE_ENTROPY: cluster_vote_entropy,
                    Strategy.BALD: cluster_bald}


def committee_probs(member_probs: np.ndarray, measure: Strategy | str) -> np.ndarray:
    """A classifier committee's disagreement per row (K, N, C): vote-entropy, or bald (disagreement is bald)."""
    m = Strategy(measure)
    if not m.committee:
        raise ValueError(f"{m} is not a committee measure (disagreement, vote-entropy, bald)")
    return vote_entropy(member_probs) if m == Strategy.VOTE_ENTROPY else bald(member_probs)


def committee_boxes(clusters: np.ndarray, measure: Strategy | str) -> np.ndarray:
    """A detector committee's disagreement per matched object (cluster) of one image."""
    m = Strategy(measure)
    if not m.committee:
        raise ValueError(f"{m} is not a committee measure (disagreement, vote-entropy, bald)")
    return CLUSTER_MEASURES[m](clusters)


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
