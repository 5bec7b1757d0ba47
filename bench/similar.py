"""Vector index libraries for `visionloop similar`: build time, query time and recall@10 against exact numpy.

    flock /tmp/cpu.lock .venv/bin/python bench/similar.py [--n 50000] [--raccoon PROJECT_OR_FOLDER]

Random unit vectors in 1280 dimensions (the EfficientNet-Lite0 embedding size) are the hard case for graph
indexes (no cluster structure); the raccoon embeddings are the real one (small: every library is exact there).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def exact(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = q @ x.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def run_usearch(x, q, k):
    from usearch.index import Index

    t0 = time.perf_counter()
    idx = Index(ndim=x.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
    idx.add(np.arange(len(x), dtype=np.uint64), x, threads=os.cpu_count() or 1)
    t1 = time.perf_counter()
    m = idx.search(q, k, threads=1)
    return t1 - t0, time.perf_counter() - t1, np.asarray(m.keys)


def run_faiss(x, q, k):
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    idx = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = 128
    idx.add(x)
    t1 = time.perf_counter()
    idx.hnsw.efSearch = 64
    faiss.omp_set_num_threads(1)
    _, rows = idx.search(q, k)
    return t1 - t0, time.perf_counter() - t1, rows


def run_hnswlib(x, q, k):
    import hnswlib

    t0 = time.perf_counter()
    idx = hnswlib.Index(space="ip", dim=x.shape[1])
    idx.init_index(max_elements=len(x), ef_construction=128, M=16, random_seed=0)
    idx.add_items(x, np.arange(len(x)), num_threads=os.cpu_count() or 1)
    t1 = time.perf_counter()
    idx.set_ef(64)
    rows, _ = idx.knn_query(q, k=k, num_threads=1)
    return t1 - t0, time.perf_counter() - t1, rows


def run_numpy(x, q, k):
    t1 = time.perf_counter()
    rows = exact(x, q, k)
    return 0.0, time.perf_counter() - t1, rows


LIBS = {"numpy (exact)": run_numpy, "usearch": run_usearch, "faiss-cpu HNSWFlat": run_faiss, "hnswlib": run_hnswlib}


def table(name: str, x: np.ndarray, q: np.ndarray, k: int = 10) -> None:
    truth = exact(x, q, k)
    print(f"\n### {name}: {len(x)} × {x.shape[1]}, {len(q)} queries, k={k}, {os.cpu_count()} cores\n")
    print("| library | build s | query ms (1 thread, each) | recall@10 |")
    print("|---|---:|---:|---:|")
    for lib, fn in LIBS.items():
        build, query, rows = fn(x, q, k)
        print(f"| {lib} | {build:.2f} | {1000 * query / len(q):.3f} | {recall(rows, truth):.4f} |", flush=True)


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--raccoon", help="a visionloop project whose embeddings to index (after `visionloop embed`)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((a.n, 1280)))
    table("random unit vectors", x, unit(rng.standard_normal((a.queries, 1280))), 10)
    if a.raccoon:
        from visionloop.store import Store, embeddings

        with Store.open(a.raccoon) as store:
            from sqlalchemy import select

            from visionloop.store.schema import EmbeddingRow

            with store.session() as s:
                name = s.scalar(select(EmbeddingRow.embedder))
            _, m = embeddings.load(store, name)
        table(f"raccoon embeddings ({name})", m, m, 10)


if __name__ == "__main__":
    main()
