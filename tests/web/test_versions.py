"""The versions pages: the list with split counts and recipe, a diff between two versions per split, and the
augmentation preview grid (a PNG of the version's augmented images)."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image
from sqlalchemy import select

from visionloop.store import Store
from visionloop.store.schema import VersionItemRow, VersionRow
from visionloop.web import views

from .conftest import NUMBERS


def _items(web_project) -> dict[str, dict[str, str]]:
    """version name -> {file name: split}, read straight from the version's item rows."""
    out: dict[str, dict[str, str]] = {}
    with Store.open(web_project) as store, store.session() as s:
        for name, fname, split in s.execute(select(VersionRow.name, VersionItemRow.file_name, VersionItemRow.split)
                                            .join(VersionItemRow, VersionItemRow.version_id == VersionRow.id)):
            out.setdefault(name, {})[fname] = split
    return out


def test_versions_list_counts_and_recipe(server, web_project):
    items = _items(web_project)
    with httpx.Client(base_url=server.url) as c:
        got = c.get("/v1/ui/versions").json()["versions"]
        html = c.get("/versions").text
    assert [v["name"] for v in got] == ["aug", "v1"]
    for v in got:
        per = Counter(items[v["name"]].values())
        assert v["images"] == len(items[v["name"]]) and {k: s["images"] for k, s in v["splits"].items()} == dict(per)
        row = re.search(rf'<tr data-version="{v["name"]}">.*?</tr>', html, re.S).group(0)
        assert f'<td class="images">{v["images"]}</td>' in row
        for split, s in v["splits"].items():
            assert f'<span class="split" data-split="{split}">{split} {s["images"]} / {s["annotations"]}</span>' in row
    assert len(items["v1"]) == len(NUMBERS) + 1
    assert "augment ×2: flip" in re.search(r'<tr data-version="aug">.*?</tr>', html, re.S).group(0)
    assert 'id="diff-form"' in html


def test_version_diff_per_split(server, web_project):
    items = _items(web_project)
    a, b = items["v1"], items["aug"]
    added = Counter(b[n] for n in set(b) - set(a))
    unchanged = Counter(a[n] for n in set(a) & set(b) if a[n] == b[n])
    assert added["train"] == sum(1 for s in a.values() if s == "train") > 0 and set(added) == {"train"}
    with httpx.Client(base_url=server.url) as c:
        d = c.get("/v1/ui/versions-diff", params={"a": "v1", "b": "aug"}).json()
        html = c.get("/versions-diff", params={"a": "v1", "b": "aug"}).text
        assert c.get("/versions-diff", params={"a": "v1"}).status_code == 400
        assert c.get("/versions-diff", params={"a": "v1", "b": "nope"}).status_code == 404
        # /versions/NAME is any version's page, `diff` included (the diff lives at /versions-diff)
        r = c.get("/v1/ui/versions/diff")
        assert r.status_code == 404 and "diff" in r.json()["message"]
    assert d["images"]["added"] == sum(added.values()) and d["images"]["removed"] == 0
    assert d["images"]["unchanged"] == sum(unchanged.values()) == len(a)
    for split in ("train", "valid"):
        assert d["by_split"][split]["added"] == added.get(split, 0)
        assert d["by_split"][split]["unchanged"] == unchanged[split]
        row = re.search(rf'<tr data-split="{split}">.*?</tr>', html, re.S).group(0)
        assert f'<td data-k="added">{added.get(split, 0)}</td>' in row
        assert f'<td data-k="unchanged">{unchanged[split]}</td>' in row
        assert '<td data-k="removed">0</td>' in row
    assert [r["field"] for r in d["recipe"]] == ["augment"]
    assert '<tr data-field="augment">' in html


def test_version_page_and_preview_grid(server, web_project):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        html = c.get("/versions/aug").text
        png = c.get("/versions/aug/preview.png")
        assert c.get("/versions/nope").status_code == 404
    assert 'src="/versions/aug/preview.png"' in html and "multiplier: 2" in html
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(png.content))
    # 9 images: a 3 × 3 grid of square cells
    assert im.size == (3 * views.PREVIEW_CELL, 3 * views.PREVIEW_CELL)
    # drawn once: the version is immutable, the grid is kept in the project's cache and served from there
    cached = list((Path(web_project) / "cache" / "previews").glob("*.png"))
    assert len(cached) == 1 and cached[0].read_bytes() == png.content
    cached[0].write_bytes(b"kept")  # what the next request returns is the cached file
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/versions/aug/preview.png").content == b"kept"
    cached[0].unlink()
