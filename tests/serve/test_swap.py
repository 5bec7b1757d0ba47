"""Hot swap on promote during traffic (no request dropped, each client sees one switch), the LRU, batching."""

from __future__ import annotations

import asyncio
import shutil
import threading

import httpx
import pytest

from visionloop.serve import Settings
from visionloop.store import Store
from visionloop.store import models as registry

from .conftest import Server, png


@pytest.fixture
def copy(project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(project, root)
    return root


def _collapse(seq: list[int]) -> list[int]:
    return [v for i, v in enumerate(seq) if i == 0 or seq[i - 1] != v]


def test_hot_swap_during_traffic(copy):
    data = png()
    with Server(copy, Settings(refresh_s=0.1, max_batch=4)) as s:
        seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]
        phase = {"n": 0}
        promoted_elsewhere, promoted_by_api = threading.Event(), asyncio.Event()

        async def client(i: int, c: httpx.AsyncClient) -> None:
            while len(seen[i]) < 400:
                r = await c.post("/v1/models/detect/predict", content=data)
                seen[i].append((r.status_code, r.json()["model"]["version"] if r.status_code == 200 else -1))
                phase["n"] += 1
                if phase["n"] == 40:  # another process (the CLI) promotes det-a to ga: noticed by the refresh
                    threading.Thread(target=_promote, args=(copy, "det-a", promoted_elsewhere)).start()
                if promoted_elsewhere.is_set() and all(v and v[-1][1] == 1 for v in seen) and \
                        not promoted_by_api.is_set():
                    promoted_by_api.set()  # then the API promotes det-b to ga: the newest ga wins again
                    r = await c.post("/v1/models/det-b/promote", json={"stage": "ga"})
                    assert r.status_code == 200 and r.json()["serving"] == 2
                if promoted_by_api.is_set() and all(v and v[-1][1] == 2 for v in seen):
                    return

        async def main() -> None:
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as c:
                await asyncio.gather(*(client(i, c) for i in range(4)))

        asyncio.run(main())
        for per_client in seen:
            assert {code for code, _ in per_client} == {200}
            assert _collapse([v for _, v in per_client]) == [2, 1, 2]
        metrics = httpx.get(s.url + "/metrics").text
        assert 'visionloop_model_swaps_total{model="detect"} 2.0' in metrics
        assert httpx.get(s.url + "/v1/models/detect").json()["serving"] == 2


def _promote(root, name: str, done: threading.Event) -> None:
    with Store.open(root) as store:
        registry.promote(store, name, "ga")
    done.set()


def test_lru_evicts_and_reloads(copy):
    with Server(copy, Settings(cache_models=1, refresh_s=0)) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        versions = [c.post(f"/v1/models/{n}/predict", content=png()).json()["model"]["version"]
                    for n in ("det-a", "det-b", "det-a", "detect")]
        assert versions == [1, 2, 1, 2]
        assert len(s.service.pool.loaded) == 1
        assert "visionloop_models_loaded 1.0" in c.get("/metrics").text


def test_concurrent_requests_share_batches(copy):
    """Many clients at once: images run in shared batches (sizes > 1), each answer is its own image's."""
    images = [png(seed=i) for i in range(16)]
    with Server(copy, Settings(max_batch=8, max_wait_ms=20, refresh_s=0)) as s:
        async def main():
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as c:
                return await asyncio.gather(*(c.post("/v1/models/det-a/predict", content=d,
                                                     params={"confidence": 0.01}) for d in images))

        together = asyncio.run(main())
        with httpx.Client(base_url=s.url, timeout=30) as c:
            alone = [c.post("/v1/models/det-a/predict", content=d, params={"confidence": 0.01}) for d in images]
    sizes = [r.json()["images"][0]["batch_size"] for r in together]
    assert max(sizes) > 1
    assert [r.json()["images"][0]["batch_size"] for r in alone] == [1] * 16
    for a, b in zip(together, alone, strict=True):  # batched or not, the same boxes (to the rounding)
        pa, pb = a.json()["images"][0]["predictions"], b.json()["images"][0]["predictions"]
        assert [p["class_id"] for p in pa] == [p["class_id"] for p in pb]
        for x, y in zip(pa, pb, strict=True):
            assert x["box"] == pytest.approx(y["box"], abs=0.05) and x["confidence"] == pytest.approx(
                y["confidence"], abs=1e-4)
