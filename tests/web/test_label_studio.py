""""Send to Label Studio" from the production page: the newest selection (a `visionloop select` tag) goes to a
REAL Label Studio server (tests/loop/test_labelstudio.py's fixture; it skips without .ci/ls-venv) through the
same function `visionloop label send` calls, with LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from loop.test_labelstudio import TOKEN, label_studio  # noqa: F401 - the real server, started once for this module

from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer
from visionloop.store import Store
from visionloop.store import tags as tag_store

PICKED = 4


@pytest.fixture(scope="module")
def picked(voc_subset, tmp_path_factory) -> tuple[Path, str, dict[int, str]]:
    """Six raccoon photos with their boxes; four of them tagged as `visionloop select` tags a pick."""
    from visionloop.ingest import import_dataset

    root = tmp_path_factory.mktemp("ls-send")
    src = voc_subset(root / "voc", range(1, 7))
    with Store.init(root / "project") as store:
        import_dataset(store, src)
        rows = tag_store.images(store)[:PICKED]
        _, tag = tag_store.add_tag(store, [r.id for r in rows], None, source="visionloop select --strategy random",
                                   summary={"strategy": "random", "budget": PICKED})
    return root / "project", tag, {r.id: r.file_name for r in rows}


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _tasks(url: str, pid: int) -> list[dict]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {TOKEN}"}, timeout=60) as ls:
        return ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"}).json()


def test_send_the_selection_from_the_production_page(label_studio, picked, monkeypatch):  # noqa: F811
    project, tag, ids = picked
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with BackgroundServer(project, Settings(refresh_s=0.5, url_allow_list=[])) as s, \
            httpx.Client(base_url=s.url, follow_redirects=False, timeout=120) as c:
        html = c.get("/production").text  # not configured: the selection, no button, and how to configure
        assert re.search(rf'<tr data-tag="{tag}">.*?<td class="n">{PICKED}</td>', html, re.S)
        assert 'id="ls-off"' in html and "send-ls" not in html
        r = c.post("/production/label-studio", data={"tag": tag, "csrf": c.cookies["vl_csrf"]})  # no form: the cookie
        assert "not sent to Label Studio: Label Studio is not configured" in c.get(r.headers["location"]).text

        monkeypatch.setenv("LABEL_STUDIO_URL", label_studio)
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
        html = c.get("/production").text
        assert f'<input type="hidden" name="tag" value="{tag}"><button type="submit"' in html
        assert c.post("/production/label-studio", data={"tag": tag}).status_code == 403  # no CSRF token
        r = c.post("/production/label-studio", data={"tag": tag, "csrf": _csrf(html)})
        assert r.status_code == 303
        pid = int(re.search(r"[?&]ls=(\d+)", r.headers["location"]).group(1))
        page = c.get(r.headers["location"]).text
        assert f'id="ls-link" href="{label_studio}/projects/{pid}/data"' in page
        assert f"{PICKED} images → Label Studio project {pid} (created): {PICKED} tasks created, 0 already there" in page
        # the same selection again: nothing new in Label Studio
        again = c.post("/production/label-studio", data={"tag": tag, "csrf": _csrf(html)})
        assert f"{PICKED} already there" in c.get(again.headers["location"]).text
        # an unknown tag: one line saying so
        bad = c.post("/production/label-studio", data={"tag": "nope", "csrf": _csrf(html)})
        assert "not sent to Label Studio: no image has the tag" in c.get(bad.headers["location"]).text
    tasks = _tasks(label_studio, pid)
    assert len(tasks) == PICKED
    assert sorted((t["data"]["vl_image"], t["data"]["vl_file_name"]) for t in tasks) == sorted(ids.items())
