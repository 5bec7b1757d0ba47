"""The map page: the lund street photos' GPS positions and sequences (read by the geo stage) drawn without
tiles, checked against the EXIF read independently with Pillow; a project without GPS says so."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer


def _exif_gps(path: Path) -> tuple[float, float] | None:
    """(lat, lon) from the image's GPS IFD with Pillow, or None without one."""
    ifd = Image.open(path).getexif().get_ifd(0x8825)
    if 2 not in ifd or 4 not in ifd:
        return None
    d = lambda v: float(v[0]) + float(v[1]) / 60 + float(v[2]) / 3600  # noqa: E731
    return d(ifd[2]) * (-1 if ifd[1] == "S" else 1), d(ifd[4]) * (-1 if ifd[3] == "W" else 1)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine on a sphere of the WGS84 semi-major axis (what the geo stage measures with)."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    return 2 * 6_378_137.0 * math.asin(math.sqrt(h))


def _runs(gps: list[tuple[float, float]], step_m: float) -> list[int]:
    """Sequence lengths when the name-ordered photos (lund has no capture times) are cut at steps over step_m."""
    out = [1]
    for a, b in zip(gps, gps[1:], strict=False):
        if _metres(a, b) > step_m:
            out.append(1)
        else:
            out[-1] += 1
    return out


@pytest.fixture(scope="module")
def lund_server(lund, tmp_path_factory) -> Iterator[tuple[BackgroundServer, dict[str, tuple[float, float] | None]]]:
    from visionloop.ingest import import_dataset
    from visionloop.store import Store

    root = tmp_path_factory.mktemp("lund-map")
    shutil.copytree(lund / "images", root / "photos" / "street")  # a classification-folders layout: one class
    with Store.init(root / "project") as store:
        import_dataset(store, root / "photos")
    exif = {f"street/{p.name}": _exif_gps(p) for p in sorted((lund / "images").glob("*.jpg"))}
    with BackgroundServer(root / "project", Settings(refresh_s=0.5, url_allow_list=[])) as s:
        yield s, exif


def test_map_json_matches_the_exif(lund_server):
    server, exif = lund_server
    located = {n: ll for n, ll in exif.items() if ll is not None}
    gps = [located[n] for n in sorted(located)]
    with httpx.Client(base_url=server.url) as c:
        d = c.get("/v1/ui/map").json()
        cut = c.get("/v1/ui/map", params={"max_step": 5}).json()
        images = {im["id"]: im["file_name"] for im in c.get("/v1/ui/dataset", params={"per_page": 200}).json()["images"]}
        assert c.get("/v1/ui/map", params={"max_step": "-1"}).status_code == 400
    assert (len(exif), len(located)) == (29, 29)
    assert (d["images"], d["located"], d["unlocated"]) == (len(exif), len(located), 0)
    points = [f for f in d["geojson"]["features"] if f["geometry"]["type"] == "Point"]
    lines = [f for f in d["geojson"]["features"] if f["geometry"]["type"] == "LineString"]
    assert len(points) == len(located)
    for f in points:
        p = f["properties"]
        assert f["geometry"]["coordinates"][:2] == pytest.approx(located[p["name"]][::-1], abs=1e-12)
        assert images[p["image_id"]] == p["name"] and p["href"] == f"/images/{p['image_id']}"
    assert [s["images"] for s in d["sequences"]] == _runs(gps, 50.0) == [29]
    assert len(lines) == 1 and len(lines[0]["geometry"]["coordinates"]) == 29
    length = sum(_metres(a, b) for a, b in zip(gps, gps[1:], strict=False))
    assert d["sequences"][0]["length_m"] == pytest.approx(length, abs=0.01)
    assert images[d["sequences"][0]["first_id"]] == "street/01.jpg"
    # a 5 m step cuts the street where the photographer walked further between two photos
    want = _runs(gps, 5.0)
    assert len(want) > 1 and [s["images"] for s in cut["sequences"]] == want
    assert sum(f["geometry"]["type"] == "LineString" for f in cut["geojson"]["features"]) == \
        sum(n >= 2 for n in want)
    assert d["features"] == []


def test_map_page_and_nav(lund_server, server):
    lund, _ = lund_server
    with httpx.Client(base_url=lund.url) as c:
        page = c.get("/map").text
        home = c.get("/").text
    assert 'id="nav-map"' in page and 'id="nav-map"' in home
    assert "29 of 29 images located · 1 sequence" in page and 'id="empty"' not in page
    assert 'srcdoc="&lt;!doctype html&gt;' in page and "https://" not in re.search(r'srcdoc="[^"]*"', page).group(0)
    # the raccoon project has no GPS: no Map link, and the page says so
    with httpx.Client(base_url=server.url) as c:
        d = c.get("/v1/ui/map").json()
        page = c.get("/map")
        home = c.get("/").text
    assert (d["located"], d["sequences"], d["geojson"]["features"]) == (0, [], [])
    assert d["images"] == d["unlocated"] > 0
    assert page.status_code == 200 and 'id="empty"' in page.text and "No GPS positions in this project" in page.text
    assert 'id="nav-map"' not in home and "<iframe" not in page.text


def test_map_in_the_browser(lund_server, page, screens):
    server, exif = lund_server
    located = {n: ll for n, ll in exif.items() if ll is not None}
    page.goto(server.url + "/")
    page.click("#nav-map")
    page.wait_for_url(server.url + "/map")
    from playwright.sync_api import expect

    canvas = page.frame_locator("#map").locator("canvas")
    expect(canvas).to_have_attribute("width", re.compile(r"^[1-9]\d*$"))  # set by fit(), then draw() runs

    def js(expr: str):
        """Evaluate in the map's frame (through a locator: the sandboxed frame may move to another process)."""
        return canvas.evaluate(f"c => {expr}")

    assert js("[pts.length, lines.length]") == [29, 1]
    # the first photo's dot is drawn in its sequence's colour at its place on the canvas
    rgb = js("(() => { const q = P(pts[0].geometry.coordinates).map(Math.round);"
                         " return [...x.getImageData(q[0], q[1], 1, 1).data].slice(0, 3); })()")
    assert rgb == [0xd6, 0x27, 0x28]
    # the 50 m scale bar (black, 3 px high at the bottom left) is as long as 50 m between two photos' dots
    first, last = located["street/01.jpg"], located["street/29.jpg"]
    px = js("(() => { const a = P(pts[0].geometry.coordinates), b = P(pts[28].geometry.coordinates);"
                        " return Math.hypot(a[0] - b[0], a[1] - b[1]); })()")
    bar = 50 * px / _metres(first, last)
    row = js("[...x.getImageData(0, H - 19, W, 1).data].filter((v, i) => i % 4 == 3)")  # alpha
    drawn = [i for i, a in enumerate(row[:400]) if a == 255]
    assert drawn[0] == 10 and abs(drawn[-1] + 1 - 10 - bar) <= 1.5
    assert page.locator("#sequences tr[data-sequence]").count() == 1
    page.screenshot(path=str(screens / "map.png"), full_page=True)
    assert (screens / "map.png").stat().st_size > 5_000
    # a click on a photo's dot opens its image page
    box = page.locator("#map").bounding_box()
    q = js("P(pts[0].geometry.coordinates)")
    page.mouse.click(box["x"] + q[0] + 1, box["y"] + q[1] + 1)  # +1: the iframe's border
    page.wait_for_url(re.compile(r"/images/\d+$"))
    assert "street/01.jpg" in page.locator("h1").inner_text()
