"""The pages in a real headless Chromium (Debian's, driven by Playwright's Python API; never `playwright
install`): open the dataset, filter by a health finding, open an image, change a class and undo it, open a
model's errors filtered to missed objects, promote the model. Each page is screenshotted (not committed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from visionloop.store import Store
from visionloop.store import evaluations as evals
from visionloop.store import models as registry
from visionloop.web import views

from .conftest import DOGS, NUMBERS


def _shot(page, screens: Path, name: str) -> None:
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)
    assert (screens / f"{name}.png").stat().st_size > 5_000


def test_dataset_health_image_relabel_undo(server, page, screens, web_project):
    page.goto(server.url + "/")
    assert page.locator("#count").inner_text().startswith(f"{len(NUMBERS) + 1} images")
    page.wait_for_function("[...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".tile svg rect").count() > 0
    _shot(page, screens, "dataset")

    page.select_option("select[name=class]", "dog")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"class=dog"))
    assert page.locator(".tile").count() == len(DOGS)

    page.goto(server.url + "/health")
    assert page.locator("#findings tr[data-check]").count() > 0
    _shot(page, screens, "health")
    page.locator('#findings tr[data-check="exact_duplicates"] a.show').click()
    page.wait_for_url(re.compile(r"finding=exact_duplicates"))
    names = sorted(page.locator(".tile").evaluate_all("ts => ts.map(t => t.title)"))
    assert names == ["images/copy-of-1.jpg", "images/raccoon-1.jpg"]

    page.goto(server.url + "/?class=dog")
    page.locator(".tile").first.click()
    page.wait_for_url(re.compile(r"/images/\d+$"))
    image_id = int(page.url.rsplit("/", 1)[1])
    first = page.locator("#anns tr[data-ann]").first
    ann = int(first.get_attribute("data-ann"))
    assert first.locator("td.cls").inner_text().strip() == "dog"
    _shot(page, screens, "image")
    first.locator("select[name=class]").select_option("raccoon")
    first.locator("form.relabel button[type=submit]").click()
    page.wait_for_selector("#flash")
    batch = int(re.search(r"batch (\d+)", page.locator("#flash").inner_text()).group(1))
    assert page.locator(f'#anns tr[data-ann="{ann}"] td.cls').inner_text().strip() == "raccoon"
    with Store.open(web_project) as store:  # in the store too, not only on the page
        assert [a["class"] for a in views.image(store, image_id)["annotations"] if a["id"] == ann] == ["raccoon"]
    _shot(page, screens, "image-relabelled")
    page.locator(f'#batches tr[data-batch="{batch}"] button').click()
    page.wait_for_selector("#flash")
    assert page.locator("#flash").inner_text() == f"batch {batch} undone"
    assert page.locator(f'#anns tr[data-ann="{ann}"] td.cls').inner_text().strip() == "dog"
    assert page.locator(f'#batches tr[data-batch="{batch}"]').inner_text().strip().endswith("undone")
    with Store.open(web_project) as store:
        assert [a["class"] for a in views.image(store, image_id)["annotations"] if a["id"] == ann] == ["dog"]


def test_errors_missed_and_promote(server, page, screens, web_project):
    with Store.open(web_project) as store:
        ev = evals.latest(store, model_id=registry.get(store, "det-a").id)
        missed = len(evals.events(store, ev.id, error="missed"))
        stage = registry.get(store, "det-a").stage
    page.goto(server.url + "/models")
    assert page.locator('#models tr[data-model="det-a"] td.stage').inner_text() == stage
    _shot(page, screens, "models")
    page.locator('#models tr[data-model="det-a"] a.errors').click()
    page.wait_for_url(re.compile(r"/models/det-a/errors"))
    page.select_option("select[name=error]", "missed")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"error=missed"))
    assert page.locator("#count").inner_text() == f"{missed} errors"
    assert page.locator(".tile.err").count() == missed
    assert page.locator(".tile.err.missed").count() == missed
    _shot(page, screens, "errors-missed")

    page.goto(server.url + "/models")
    page.locator('#models tr[data-model="det-a"] button.promote').click()
    page.wait_for_selector("#flash")
    assert page.locator("#flash").inner_text() == "det-a is now beta"
    assert page.locator('#models tr[data-model="det-a"] td.stage').inner_text() == "beta"
    with Store.open(web_project) as store:
        assert registry.get(store, "det-a").stage == "beta"


def test_evaluation_page_from_models(server, page, screens, web_project):
    with Store.open(web_project) as store:
        ev = evals.latest(store, model_id=registry.get(store, "det-a").id)
    curve, conf = ev.metrics["pr_curve"], ev.metrics["confusion"]
    page.goto(server.url + "/models")
    page.locator('#models tr[data-model="det-a"] a.evaluation').click()
    page.wait_for_url(re.compile(rf"/evaluations/{ev.id}$"))
    drawn = [c for c in curve["classes"] if c["precision"] is not None]
    assert page.locator("svg#pr polyline.curve").count() == len(drawn) + 1
    box = page.locator("svg#pr").bounding_box()
    assert box["width"] > 300 and box["height"] > 200  # laid out, not collapsed
    assert page.locator("#confusion tr[data-gt]").count() == len(conf["classes"])
    cell = page.locator('#confusion tr[data-gt="background"] td[data-pred="raccoon"]').inner_text()
    assert int(cell) == conf["matrix"][-1][conf["classes"].index("raccoon")]
    assert page.locator("#tide tr[data-error]").count() == 8
    _shot(page, screens, "evaluation")


def test_versions_diff_and_preview(server, page, screens):
    page.goto(server.url + "/versions")
    assert page.locator("#versions tr[data-version]").count() == 2
    _shot(page, screens, "versions")
    page.select_option("#diff-form select[name=a]", "v1")
    page.select_option("#diff-form select[name=b]", "aug")
    page.click("#diff-form button[type=submit]")
    page.wait_for_url(re.compile(r"/versions-diff\?a=v1&b=aug"))
    assert page.locator('#diff tr[data-split="*"] td[data-k="removed"]').inner_text() == "0"
    assert int(page.locator('#diff tr[data-split="train"] td[data-k="added"]').inner_text()) > 0
    _shot(page, screens, "version-diff")
    page.goto(server.url + "/versions/aug")
    page.wait_for_function("document.getElementById('preview').complete")
    assert page.locator("#preview").evaluate("i => [i.naturalWidth, i.naturalHeight]") == \
        [3 * views.PREVIEW_CELL, 3 * views.PREVIEW_CELL]
    _shot(page, screens, "version")


def test_editor_draw_add_delete_undo(server, page, screens, web_project):
    with Store.open(web_project) as store:
        items = views.dataset(store, per_page=200)["images"]
    im = next(i for i in items if len(i["annotations"]) == 1)
    page.goto(server.url + f"/images/{im['id']}")
    # Shift+drag over the middle half of the image fills the form with that box, in image pixels
    box = page.locator("#frame").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    got = [float(page.locator(f"#add-box input[name={k}]").input_value()) for k in ("x0", "y0", "x1", "y1")]
    want = [im["width"] * 0.25, im["height"] * 0.25, im["width"] * 0.75, im["height"] * 0.75]
    assert got == pytest.approx(want, abs=im["width"] / box["width"] + 0.1)  # a screen pixel
    page.select_option("#add-box select[name=class]", "dog")
    page.click("#add-box button[type=submit]")
    page.wait_for_selector("#flash")
    added = int(re.search(r"added dog box (\d+)", page.locator("#flash").inner_text()).group(1))
    add_batch = int(re.search(r"batch (\d+)", page.locator("#flash").inner_text()).group(1))
    assert page.locator("#anns tr[data-ann]").count() == 2
    assert page.locator(f'.ov rect[data-ann="{added}"]').count() == 1
    _shot(page, screens, "image-box-added")
    first = im["annotations"][0]["id"]
    page.locator(f'#anns tr[data-ann="{first}"] form.delete button').click()
    page.wait_for_selector("#flash")
    del_batch = int(re.search(r"batch (\d+)", page.locator("#flash").inner_text()).group(1))
    assert [int(x) for x in page.locator("#anns tr[data-ann]").evaluate_all("rs => rs.map(r => r.dataset.ann)")] == [added]
    for batch in (del_batch, add_batch):  # newest first
        page.locator(f'#batches tr[data-batch="{batch}"] button').click()
        page.wait_for_selector("#flash")
        assert page.locator("#flash").inner_text() == f"batch {batch} undone"
    assert [int(x) for x in page.locator("#anns tr[data-ann]").evaluate_all("rs => rs.map(r => r.dataset.ann)")] == [first]
