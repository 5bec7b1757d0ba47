"""Stored blur regions: `visionloop blur --project` finds the face in scikit-image's astronaut() with the gallery's
CenterFace and stores it (the blob stays the imported bytes); `blur regions add/reject` correct them; each is one
batch that `visionloop undo` takes back exactly; an import is not undone from under its regions."""

from __future__ import annotations

import hashlib
import json
import shutil

import cv2
import pytest
from skimage import data as skdata
from typer.testing import CliRunner

from visionloop import gallery
from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.store import Store

runner = CliRunner()
FACE = [180, 62, 271, 178]  # CenterFace's box on astronaut() at conf 0.5, rounded to whole pixels
KEPT = {"baked": 0, "originals_discarded": 0, "originals_kept": {}}  # the project keeps originals (the default)


def _ok(args: list[str]) -> dict | list:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _fail(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert isinstance(r.exception, VisionLoopError), r.output  # main() prints it as one line, exit status 1
    return " ".join(str(r.exception).split())


@pytest.fixture(scope="module")
def project(tmp_path_factory, lund):
    tmp = tmp_path_factory.mktemp("blur")
    src = tmp / "src"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    shutil.copy(lund / "images" / "01.jpg", src)
    p = tmp / "p"
    _ok(["init", str(p), "--json"])
    _ok(["import", str(src), "-p", str(p), "--json"])
    with Store.open(p) as store:
        gallery.add(store, "face-detector")
    return p, src


def test_detect_store_correct_undo(project):
    p, src = project
    rep = _ok(["blur", "-p", str(p), "--json"])
    assert rep == {"batch": 2, "images": 2, "skipped": 0, "regions": {"face": 1}, **KEPT}
    rows = _ok(["blur", "regions", "list", "-p", str(p), "--json"])
    assert len(rows) == 1
    r = rows[0]
    assert (r["id"], r["file_name"], r["class"], r["source"], r["state"], r["batch"]) == (
        1, "astronaut.png", "face", "face-detector", "blur", 2)
    assert [round(v) for v in r["box"]] == FACE and r["score"] > 0.5
    # the stored bytes are the imported file's, untouched
    with Store.open(p) as store:
        assert {s.image.file_name: s.image.sha256 for s in store.samples()} == {
            f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in src.iterdir()}
    # a re-run does not detect the astronaut again (the lund photo, with no face, is looked at again)
    assert _ok(["blur", "-p", str(p), "--json"]) == {"batch": None, "images": 2, "skipped": 1, "regions": {},
                                                     **KEPT}

    add = _ok(["blur", "regions", "add", "01.jpg", "10", "20", "110", "60", "--class", "plate", "-p", str(p),
               "--json"])
    assert add == {"batch": 3, "region": 2}
    assert _ok(["blur", "regions", "reject", "1", "-p", str(p), "--json"]) == {"batch": 4, "region": 1}
    rows = _ok(["blur", "regions", "list", "-p", str(p), "--json"])
    assert [(r["id"], r["class"], r["box"], r["source"], r["state"], r["batch"]) for r in rows] == [
        (1, "face", rows[0]["box"], "face-detector", "rejected", 4), (2, "plate", [10, 20, 110, 60], "user", "blur", 3)]
    assert [r["id"] for r in _ok(["blur", "regions", "list", "01.jpg", "-p", str(p), "--json"])] == [2]
    assert "already rejected (batch 4)" in _fail(["blur", "regions", "reject", "1", "-p", str(p)])
    assert "is not inside 01.jpg" in _fail(["blur", "regions", "add", "01.jpg", "0", "0", "1e5", "10", "-p", str(p)])
    assert "no image 'nope.jpg'" in _fail(["blur", "regions", "add", "nope.jpg", "0", "0", "1", "1", "-p", str(p)])
    # the import is not undone from under the regions; the blur batches are, newest first
    msg = _fail(["undo", "1", "-p", str(p)])
    assert "have blur regions of later batches (3, 4)" in msg
    assert "changed after" in _fail(["undo", "2", "-p", str(p)])  # batch 4 changed its region since
    for b in (4, 3, 2):
        _ok(["undo", str(b), "-p", str(p), "--json"])
        if b == 4:
            assert _ok(["blur", "regions", "list", "-p", str(p), "--json"])[0]["state"] == "blur"
    assert _ok(["blur", "regions", "list", "-p", str(p), "--json"]) == []
    # detection runs again once its batch is undone
    assert _ok(["blur", "-p", str(p), "--json"])["regions"] == {"face": 1}


def test_folder_mode_still_writes_blurred_copies(project, tmp_path):
    p, src = project
    rep = _ok(["blur", str(src), "--out", str(tmp_path / "out"), "-p", str(p), "--json"])
    assert (rep["images"], rep["regions"]) == (2, 1)
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["01.jpg", "astronaut.png", "blur-regions.json"]
    assert "needs image files" in _fail(["blur", "--out", str(tmp_path / "o2"), "-p", str(p)])


def test_a_fix_that_drops_a_duplicate_moves_its_regions_to_the_kept_image(tmp_path):
    from visionloop.health.fix import fix
    from visionloop.ingest import import_dataset, undo_batch
    from visionloop.store import blur_regions, tags

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    shutil.copy(src / "a.png", src / "b.png")
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, src, fix=False)
        ids = {im.file_name: im.id for im in tags.images(store)}
        for name, box in (("a.png", (180, 62, 271, 178)), ("b.png", (10, 10, 60, 60))):
            blur_regions.add(store, ids[name], box)
        report = fix(store, workers=0)
        assert report.counts["images_deleted"] == 1 and report.counts["blur_regions_moved"] == 1
        kept = [im.id for im in tags.images(store)]
        assert len(kept) == 1
        assert {r.image_id for r in blur_regions.regions(store)} == set(kept)
        assert sorted(r.box for r in blur_regions.regions(store)) == [(10, 10, 60, 60), (180, 62, 271, 178)]
        undo_batch(store, report.batch_id)
        assert {(r.file_name, r.box) for r in blur_regions.regions(store)} == {
            ("a.png", (180, 62, 271, 178)), ("b.png", (10, 10, 60, 60))}
