"""A raccoon project of 30 photos (3 of them relabelled `dog`, one photo imported twice under another name: an
exact duplicate), a version (and "aug": the same split with flipped copies), a detector trained a few steps and
evaluated, the real server on loopback, and Debian's headless Chromium driven by Playwright (`page`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer

NUMBERS = list(range(1, 31))
DOGS = (2, 5, 9)  # these photos' boxes are relabelled dog
COPY = 1  # raccoon-1.jpg is imported a second time as copy-of-1.jpg
SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.7, "valid": 0.3, "test": 0.0}}}
AUGMENTED = {**SPLIT, "augment": {"multiplier": 2, "flip": {"horizontal": True}}}  # version "aug": + 1 copy per train image


@pytest.fixture(scope="session")
def web_project(voc_subset, tmp_path_factory) -> Path:
    from visionloop.evaluate.model import evaluate_model
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.train import train
    from visionloop.versions import create_version

    root = tmp_path_factory.mktemp("web")
    src = voc_subset(root / "voc", NUMBERS)
    for n in DOGS:
        xml = src / "annotations" / f"raccoon-{n}.xml"
        xml.write_text(xml.read_text().replace("<name>raccoon</name>", "<name>dog</name>"))
    shutil.copy(src / "images" / f"raccoon-{COPY}.jpg", src / "images" / f"copy-of-{COPY}.jpg")
    xml = (src / "annotations" / f"raccoon-{COPY}.xml").read_text()
    (src / "annotations" / f"copy-of-{COPY}.xml").write_text(
        xml.replace(f"raccoon-{COPY}.jpg", f"copy-of-{COPY}.jpg"))
    with Store.init(root / "project") as store:
        import_dataset(store, src)
        version = create_version(store, SPLIT, workers=0)
        train(store, version.name, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det-a")
        evaluate_model(store, "det-a", split="valid", score_threshold=0.0)
        create_version(store, AUGMENTED, name="aug", workers=0)
    return root / "project"


@pytest.fixture(scope="module")
def server(web_project) -> Iterator[BackgroundServer]:
    with BackgroundServer(web_project, Settings(refresh_s=0.5, url_allow_list=[])) as s:
        yield s


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(screens) -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which("chromedriver") is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium chromium-driver (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        p = ctx.new_page()
        p.set_default_timeout(20_000)
        yield p
        ctx.close()
        browser.close()


@pytest.fixture(scope="session")
def screens(tmp_path_factory) -> Path:
    """Where the browser tests leave their screenshots (kept by pytest under its tmp folder)."""
    return tmp_path_factory.mktemp("screens")
