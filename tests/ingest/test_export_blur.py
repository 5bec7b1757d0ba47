"""Exports never contain unblurred pixels: a project with stored blur regions (the face CenterFace finds in
scikit-image's astronaut(), a box a user added on a lund street photo) exports those images blurred — inside each
region's ellipse the detail is gone, every other pixel is exactly the original decode's — and a photo without
regions as the identical file; version generation blurs the same way, and a version whose regions changed after
it was made is refused at export."""

from __future__ import annotations

import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest
from skimage import data as skdata
from typer.testing import CliRunner

from visionloop import gallery
from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.store import Store

runner = CliRunner()
PLATE = (40.0, 300.0, 200.0, 360.0)  # a user's region on lund 01.jpg


def _ok(args: list[str]) -> dict | list:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    return json.loads(r.stdout) if "--json" in args else {}


def _hf(a: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F)).mean())


@pytest.fixture(scope="module")
def project(tmp_path_factory, lund):
    tmp = tmp_path_factory.mktemp("exportblur")
    src = tmp / "src"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    for n in ("01.jpg", "02.jpg"):
        shutil.copy(lund / "images" / n, src)
    h, w = cv2.imread(str(src / "01.jpg")).shape[:2]
    coco = {"categories": [{"id": 1, "name": "person"}],
            "images": [{"id": 1, "file_name": "astronaut.png", "width": 512, "height": 512},
                       {"id": 2, "file_name": "01.jpg", "width": w, "height": h},
                       {"id": 3, "file_name": "02.jpg", "width": w, "height": h}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [150, 30, 250, 470], "area": 117500,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [10, 20, 30, 40], "area": 1200,
                             "iscrowd": 0}]}
    (src / "_annotations.coco.json").write_text(json.dumps(coco))
    p = tmp / "p"
    _ok(["init", str(p), "--json"])
    _ok(["import", str(src), "-p", str(p), "--json"])
    with Store.open(p) as store:
        gallery.add(store, "face-detector")
    assert _ok(["blur", "-p", str(p), "--json"])["regions"] == {"face": 1}
    _ok(["blur", "regions", "add", "01.jpg", *map(str, PLATE), "--class", "plate", "-p", str(p), "--json"])
    regions = {r["file_name"]: r["box"] for r in _ok(["blur", "regions", "list", "-p", str(p), "--json"])}
    return p, src, regions


def _check_blurred(exported: np.ndarray, original: np.ndarray, box) -> None:
    """Inside the region the detail is gone; outside its box grown by 15 % per side nothing changed."""
    assert exported.shape == original.shape
    a, b, c, d = (int(v) for v in box)
    assert _hf(exported[b:d, a:c]) < 0.25 * _hf(original[b:d, a:c])
    gx, gy = (box[2] - box[0]) * 0.15, (box[3] - box[1]) * 0.15
    allowed = np.zeros(original.shape[:2], bool)
    allowed[max(0, int(box[1] - gy)):int(np.ceil(box[3] + gy)), max(0, int(box[0] - gx)):int(np.ceil(box[2] + gx))] = True
    changed = np.any(exported != original, axis=2)
    assert changed.any() and not (changed & ~allowed).any()
    # the ellipse inscribed in the grown box changed, its corners outside the ellipse did not
    assert np.array_equal(exported[~allowed], original[~allowed])


def _check_export(out, src, regions) -> dict[str, str]:
    coco = json.loads((out / "_annotations.coco.json").read_text())
    names = {im["file_name"] for im in coco["images"]}
    assert names == {"astronaut.png", "01.png", "02.jpg"}
    bboxes = {next(i["file_name"] for i in coco["images"] if i["id"] == a["image_id"]): a["bbox"]
              for a in coco["annotations"]}
    assert bboxes == {"astronaut.png": [150, 30, 250, 470], "01.png": [10, 20, 30, 40]}  # annotations unchanged
    # no regions: the very same file
    assert (out / "02.jpg").read_bytes() == (src / "02.jpg").read_bytes()
    _check_blurred(cv2.imread(str(out / "astronaut.png")), cv2.imread(str(src / "astronaut.png")),
                   regions["astronaut.png"])
    _check_blurred(cv2.imread(str(out / "01.png")), cv2.imread(str(src / "01.jpg")), regions["01.jpg"])
    assert not (out / "01.jpg").exists()
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}


def test_project_export_blurs_regions_only(project, tmp_path):
    p, src, regions = project
    _ok(["export", str(tmp_path / "out"), "--format", "coco", "-p", str(p)])
    _check_export(tmp_path / "out", src, regions)
    # the stored blobs are still the imported bytes
    with Store.open(p) as store:
        assert {s.image.file_name: s.image.sha256 for s in store.samples()} == {
            n: hashlib.sha256((src / n).read_bytes()).hexdigest() for n in ("astronaut.png", "01.jpg", "02.jpg")}


def test_versions_are_generated_blurred_and_refused_when_regions_change(project, tmp_path):
    p, src, regions = project
    recipe = tmp_path / "r.yaml"
    recipe.write_text("schema: 1\nseed: 7\nsplit: {mode: random, ratios: {train: 1.0, valid: 0.0, test: 0.0}}\n")
    _ok(["version", "create", "--recipe", str(recipe), "-p", str(p)])
    _ok(["version", "export", "v1", str(tmp_path / "v1"), "--format", "coco", "-p", str(p)])
    _ok(["export", str(tmp_path / "out"), "--format", "coco", "-p", str(p)])
    # the version's images are the project export's, byte for byte (one redaction)
    assert _check_export(tmp_path / "v1" / "train", src, regions) == _check_export(tmp_path / "out", src, regions)
    # a region rejected after the version was made: its export is refused; a new version follows the regions
    rid = next(r["id"] for r in _ok(["blur", "regions", "list", "01.jpg", "-p", str(p), "--json"]))
    batch = _ok(["blur", "regions", "reject", str(rid), "-p", str(p), "--json"])["batch"]
    r = runner.invoke(app, ["version", "export", "v1", str(tmp_path / "v1b"), "--format", "coco", "-p", str(p)])
    assert isinstance(r.exception, VisionLoopError)
    assert "blur regions of version v1's images changed after it was generated" in str(r.exception)
    assert not (tmp_path / "v1b").exists()
    _ok(["version", "create", "--recipe", str(recipe), "-p", str(p)])
    _ok(["version", "export", "v2", str(tmp_path / "v2"), "--format", "coco", "-p", str(p)])
    assert (tmp_path / "v2" / "train" / "01.jpg").read_bytes() == (src / "01.jpg").read_bytes()
    _ok(["undo", str(batch), "-p", str(p), "--json"])  # the region blurs again: v1 is current again
    _ok(["version", "export", "v1", str(tmp_path / "v1c"), "--format", "coco", "-p", str(p)])


def test_region_on_an_exif_rotated_photo_is_in_upright_pixels(tmp_path, lund):
    """Regions are in the upright image (EXIF orientation applied); the blurred export is that upright image."""
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    im = Image.open(lund / "images" / "03.jpg")
    exif = im.getexif()
    exif[0x0112] = 6  # the raw pixels are turned 90° clockwise to be upright
    im.save(src / "r.jpg", exif=exif, quality=90)
    upright = cv2.imread(str(src / "r.jpg"))  # OpenCV applies the orientation
    assert upright.shape[:2] == (im.width, im.height)
    p = tmp_path / "p"
    _ok(["init", str(p), "--json"])
    _ok(["import", str(src), "-p", str(p), "--json"])
    box = (50.0, 400.0, 250.0, 520.0)
    _ok(["blur", "regions", "add", "r.jpg", *map(str, box), "-p", str(p), "--json"])
    _ok(["export", str(tmp_path / "out"), "--format", "coco", "-p", str(p)])
    _check_blurred(cv2.imread(str(tmp_path / "out" / "r.png")), upright, box)


def test_labelling_tools_and_reports_get_blurred_pixels(project, tmp_path):
    """A CVAT task folder (`label send --to cvat`), a Label Studio upload and a health report's thumbnail carry
    the same blurred image as the export; an image without regions goes out as its stored bytes."""
    from visionloop.health.report import _thumb
    from visionloop.loop.labelstudio import send_to_cvat
    from visionloop.store import tags
    from visionloop.versions.redact import image_bytes

    p, src, regions = project
    _ok(["export", str(tmp_path / "out"), "--format", "coco", "-p", str(p)])
    with Store.open(p) as store:
        ids = {im.file_name: im.id for im in tags.images(store)}
        send_to_cvat(store, tmp_path / "cvat", image_ids=list(ids.values()))
        sent = {f.name: f.read_bytes() for f in (tmp_path / "cvat").rglob("*") if f.suffix in (".png", ".jpg")}
        assert sent == {n: (tmp_path / "out" / n).read_bytes() for n in ("astronaut.png", "01.png", "02.jpg")}
        assert image_bytes(store, ids["01.jpg"]) == ((tmp_path / "out" / "01.png").read_bytes(), True)
        assert image_bytes(store, ids["02.jpg"]) == ((src / "02.jpg").read_bytes(), False)
        raw = next(s.image.sha256 for s in store.samples() if s.image.file_name == "astronaut.png")
        assert _thumb(store, raw, None, ids["astronaut.png"]) != _thumb(store, raw, None)
