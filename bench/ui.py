"""Server time of the web UI's dataset page at 100,000 synthetic images (rows in the store, a few real blobs).

    .venv/bin/python bench/ui.py [--images 100000] [--pages 20]

Rows are bulk-inserted (64 distinct JPEG blobs shared by every row, 1-3 boxes each); the app runs in-process
(httpx over ASGI, no network); each page is visited once to warm (thumbnails made and cached as blobs),
then timed again. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import insert

from visionloop.serve import Settings
from visionloop.serve.app import create_app
from visionloop.store import Store
from visionloop.store.batches import BatchKind, open_batch
from visionloop.store.schema import AnnotationRow, BlobRow, ClassRow, ImageRow


def build(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    with Store.init(root) as store:
        shas = []
        for _ in range(64):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buf, "JPEG")
            shas.append(store.blobs.put(buf.getvalue()))
        with store.engine.begin() as conn:
            batch = open_batch(conn, BatchKind.IMPORT, source="bench", summary={})
            conn.execute(insert(BlobRow), [{"sha256": s, "size": 1, "media_format": "jpeg"} for s in shas])
            conn.execute(insert(ClassRow), [{"id": c + 1, "name": f"c{c}", "external_id": c, "position": c}
                                            for c in range(5)])
            for s in range(0, n, 10_000):
                conn.execute(insert(ImageRow), [
                    {"id": i + 1, "sha256": shas[i % 64], "file_name": f"img{i:06d}.jpg",
                     "split": ("train", "valid", "test")[i % 3], "state": "annotated", "width": 640, "height": 480,
                     "orientation": 1, "format": "jpeg", "meta": {}, "tags": [], "ann_digest": "", "batch_id": batch}
                    for i in range(s, min(n, s + 10_000))])
                anns = []
                for i in range(s, min(n, s + 10_000)):
                    for k in range(1 + i % 3):
                        x, y = 40 + 60 * k, 30 + 40 * k
                        anns.append({"image_id": i + 1, "class_id": 1 + (i + k) % 5, "kind": "box", "x0": x, "y0": y,
                                     "x1": x + 100, "y1": y + 80, "area": 8000, "data": {}, "attributes": {},
                                     "source": "gt", "batch_id": batch})
                conn.execute(insert(AnnotationRow), anns)


async def measure(root: Path, pages: int, queries: list[dict[str, str]]) -> list[tuple[str, float, float, float]]:
    import httpx

    app = create_app(root, Settings(refresh_s=3600))
    out = []
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            for q in queries:
                first, again = [], []
                for p in range(1, pages + 1):
                    params = {**q, "page": str(p * 37)}
                    t = time.perf_counter()
                    r = await c.get("/", params=params)
                    first.append(time.perf_counter() - t)
                    r.raise_for_status()
                    for sha in sorted(set(_thumbs(r.text))):  # what the browser fetches next
                        (await c.get(f"/thumbs/{sha}.jpg")).raise_for_status()
                    t = time.perf_counter()
                    (await c.get("/", params=params)).raise_for_status()
                    again.append(time.perf_counter() - t)
                label = ", ".join(f"{k}={v}" for k, v in q.items()) or "no filter"
                out.append((label, 1000 * statistics.median(first), 1000 * statistics.median(again),
                            1000 * max(again)))
    return out


def _thumbs(html: str) -> list[str]:
    import re

    return re.findall(r"/thumbs/([0-9a-f]{64})\.jpg", html)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--pages", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        t = time.perf_counter()
        build(root, a.images)
        print(f"built {a.images:,} image rows in {time.perf_counter() - t:.1f} s")
        queries = [{}, {"split": "valid"}, {"class": "c2"}, {"sort": "objects", "desc": "1"}, {"sort": "name"}]
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows = asyncio.run(measure(root, a.pages, queries))
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\n{a.images:,} images, 48 per page, {a.pages} pages per query (pages 37, 74, …)\n")
    print("| query | first visit, median ms | after the first visit, median ms | after, max ms |")
    print("|---|---:|---:|---:|")
    for label, f, m, x in rows:
        print(f"| {label} | {f:.1f} | {m:.1f} | {x:.1f} |")
    print(f"\nmax RSS {rss0 / 1024:.0f} MiB before the visits, {rss1 / 1024:.0f} MiB after")


if __name__ == "__main__":
    main()
