"""The production page: the prediction log's volume per hour, confidence histograms, class mix and the latest
logged images — admin-only when the server asks for keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer
from visionloop.store import Store, keys
from visionloop.store import prediction_log as plog


def _det(cls: str, conf: float, box: tuple[float, float, float, float]) -> dict:
    """A detection as the server logs it (serve.answers.detections)."""
    return {"box": dict(zip(("x0", "y0", "x1", "y1"), box, strict=True)), "class": cls, "class_id": 0,
            "confidence": conf}


T = [datetime(2026, 1, 1, 10, 5, tzinfo=UTC), datetime(2026, 1, 1, 10, 40, tzinfo=UTC),
     datetime(2026, 1, 1, 12, 10, tzinfo=UTC)]
PREDS = [[_det("raccoon", 0.95, (10.0, 20.0, 110.0, 220.0)), _det("dog", 0.35, (5.0, 5.0, 50.0, 50.0))], [],
         [_det("raccoon", 0.55, (0.0, 0.0, 30.0, 40.0))]]


@pytest.fixture(scope="module")
def tokens(web_project) -> dict[str, str]:
    with Store.open(web_project) as store:
        sample = next(iter(store.samples()))
        data = store.blobs.get(sample.image.sha256)
        plog.append(store, [plog.LogEntry(created_at=t, model="detect", model_name="det-a", model_version=1,
                                          task="detect", image=data, width=sample.image.width,
                                          height=sample.image.height, predictions=p, image_name=f"cam-{k}.jpg")
                            for k, (t, p) in enumerate(zip(T, PREDS, strict=True))])
        return {s: keys.create(store, scopes=[s], name=f"web-{s}")[1] for s in ("predict", "admin")}


@pytest.fixture(scope="module")
def guarded(web_project, tokens) -> Iterator[BackgroundServer]:
    with BackgroundServer(web_project, Settings(auth=True, refresh_s=0.5, url_allow_list=[])) as s:
        yield s


def test_production_is_admin_only(guarded, tokens):
    with httpx.Client(base_url=guarded.url) as c:
        assert c.get("/production").status_code == 401
        assert c.get("/v1/ui/production").status_code == 401
        assert c.get("/production", headers={"X-API-Key": tokens["predict"]}).status_code == 403
        assert c.get("/v1/ui/production", headers={"X-API-Key": tokens["predict"]}).status_code == 403
    with httpx.Client(base_url=guarded.url, cookies={"visionloop_key": tokens["admin"]}) as c:
        page = c.get("/production")
        assert page.status_code == 200 and "3 logged images" in page.text


def test_production_volume_histograms_mix_latest(guarded, tokens):
    with httpx.Client(base_url=guarded.url, headers={"X-API-Key": tokens["admin"]}) as c:
        d = c.get("/v1/ui/production").json()
        html = c.get("/production").text
        latest = d["latest"]
        thumb = c.get(f"/production/images/{latest[0]['image_sha256']}.jpg")
        assert c.get("/production/images/" + "0" * 64 + ".jpg").status_code == 404
        assert c.get("/production", params={"bucket": "week"}).status_code == 400
        daily = c.get("/v1/ui/production", params={"bucket": "day"}).json()
    assert (d["images"], d["predictions"], d["no_prediction"]) == (3, 3, 1)
    assert d["volume"] == {"2026-01-01T10:00:00+00:00": 2, "2026-01-01T11:00:00+00:00": 0,
                           "2026-01-01T12:00:00+00:00": 1}
    assert daily["volume"] == {"2026-01-01T00:00:00+00:00": 3}
    assert d["confidence_hist"] == [0, 0, 0, 1, 0, 1, 0, 0, 0, 1]
    assert d["top_confidence_hist"] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert d["class_mix"] == {"2026-01-01T10:00:00+00:00": {"dog": 1, "raccoon": 1}, "2026-01-01T11:00:00+00:00": {},
                              "2026-01-01T12:00:00+00:00": {"raccoon": 1}}
    # the page draws the same numbers: one bar per hour (the empty hour too), one per confidence bin
    assert re.findall(r'data-bucket="([^"]+)" data-value="(\d+)"', html) == \
        [("2026-01-01T10:00:00+00:00", "2"), ("2026-01-01T11:00:00+00:00", "0"), ("2026-01-01T12:00:00+00:00", "1")]
    conf = re.search(r'<svg class="bars" id="confidence".*?</svg>', html, re.S).group(0)
    assert [int(v) for v in re.findall(r'data-value="(\d+)"', conf)] == d["confidence_hist"]
    assert re.search(r'<tr data-bucket="2026-01-01T10:00:00\+00:00">.*?<td data-class="dog">1</td>', html, re.S)
    assert re.search(r'<tr data-bucket="2026-01-01T11:00:00\+00:00">.*?<td data-class="raccoon">0</td>', html, re.S)
    # latest first, with their boxes
    assert [e["image_name"] for e in latest] == ["cam-2.jpg", "cam-1.jpg", "cam-0.jpg"]
    assert html.count('<div class="tile" data-log=') == 3
    assert '<rect class="pred" x="10.0" y="20.0" width="100.0" height="200.0">' in html
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"


def test_production_before_anything_is_logged(tmp_path):
    with Store.init(tmp_path / "empty"):
        pass
    with BackgroundServer(tmp_path / "empty", Settings(refresh_s=0.5, url_allow_list=[])) as s, \
            httpx.Client(base_url=s.url) as c:
        d = c.get("/v1/ui/production").json()
        page = c.get("/production")
    assert (d["images"], d["volume"], d["latest"], d["confidence_hist"]) == (0, {}, [], [0] * 10)
    assert page.status_code == 200 and 'id="empty"' in page.text and "0 logged images" in page.text


def test_production_in_the_browser_after_signing_in(guarded, tokens, page, screens):
    page.goto(guarded.url + "/production")
    assert page.locator("input[name=key]").count() == 1  # the sign-in page, not the data
    page.fill("input[name=key]", tokens["admin"])
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(guarded.url + "/production")
    assert page.locator("#volume rect.bar").evaluate_all("rs => rs.map(r => +r.dataset.value)") == [2, 0, 1]
    heights = page.locator("#volume rect.bar").evaluate_all("rs => rs.map(r => r.getBBox().height)")
    assert heights[1] == 0 and heights[0] == pytest.approx(2 * heights[2])
    assert page.locator("#latest .tile").count() == 3
    page.wait_for_function("[...document.querySelectorAll('#latest img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(screens / "production.png"), full_page=True)
