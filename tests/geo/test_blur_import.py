"""Blur at import and originals not kept (issue 16, privacy): `visionloop import --blur` and `privacy.blur_on_import`
find the face in scikit-image's astronaut() with the gallery's CenterFace on the images an import adds; with
`privacy.keep_originals: false` the blurred pixels replace the stored blob, the original blob leaves the blob
store, exports and the web UI serve blurred pixels only, the batch cannot be undone and importing the source
file again does not bring the original back. The vehicle plate-band fallback runs from the CLI with a real ONNX
vehicle detector (a fixed-output graph registered with `visionloop gallery add --onnx`)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from skimage import data as skdata
from typer.testing import CliRunner

from visionloop import gallery
from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.store import Store
from visionloop.store.schema import BlobRow, ImageRow

runner = CliRunner()
FACE = [180, 62, 271, 178]  # CenterFace's box on astronaut() at conf 0.5, rounded (tests/geo/test_blur_regions.py)
CAR = (100.0, 200.0, 300.0, 320.0)  # the fixed vehicle detector's car, in its 512 px input (stretch)
BAND = [130.0, 266.0, 270.0, 314.0]  # privacy.PLATE_BAND of CAR: lower 40 %, inner 70 %


def _ok(args: list[str]) -> dict:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _fail(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert isinstance(r.exception, VisionLoopError), r.output
    return " ".join(str(r.exception).split())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rgb(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _hf(a: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)).mean())


def _grown(shape: tuple[int, ...], boxes: list[list[float]]) -> np.ndarray:
    """Where a blur may change pixels: each box grown by 15 % per side (transforms.redact.blur_boxes)."""
    allowed = np.zeros(shape[:2], bool)
    for a, b, c, d in boxes:
        gx, gy = (c - a) * 0.15, (d - b) * 0.15
        allowed[max(0, int(b - gy)):int(np.ceil(d + gy)), max(0, int(a - gx)):int(np.ceil(c + gx))] = True
    return allowed


def _only_inside(src: np.ndarray, out: np.ndarray, boxes: list[list[float]]) -> None:
    """`out` is `src` blurred inside the boxes (75 % of the detail gone) and byte-identical everywhere else."""
    assert out.shape == src.shape
    allowed = _grown(src.shape, boxes)
    changed = np.any(out != src, axis=2)
    assert changed.any() and not (changed & ~allowed).any()
    for a, b, c, d in (tuple(int(v) for v in box) for box in boxes):
        assert _hf(out[b:d, a:c]) < 0.25 * _hf(src[b:d, a:c])


@pytest.fixture(scope="module")
def src(tmp_path_factory, lund) -> Path:
    """astronaut.jpg (a face; JPEG, so blurring in place renames it .png) and lund's 01.jpg (no face)."""
    folder = tmp_path_factory.mktemp("blur-src") / "src"
    folder.mkdir()
    cv2.imwrite(str(folder / "astronaut.jpg"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 92])
    shutil.copy(lund / "images" / "01.jpg", folder)
    return folder


def _project(tmp_path: Path) -> Path:
    p = tmp_path / "p"
    _ok(["init", str(p), "--json"])
    with Store.open(p) as store:
        gallery.add(store, "face-detector")
    return p


def _images(p: Path) -> dict[str, ImageRow]:
    with Store.open(p) as store, store.session() as s:
        return {r.file_name: r for r in s.query(ImageRow).order_by(ImageRow.id)}


def test_import_blur_keeps_originals_and_exports_blurred(src, tmp_path):
    p = _project(tmp_path)
    rep = _ok(["import", str(src), "-p", str(p), "--blur", "--json"])
    assert (rep["batch"], rep["images_added"]) == (1, 2)
    assert rep["blur"] == {"batch": 2, "images": 2, "skipped": 0, "regions": {"face": 1}, "baked": 0,
                           "originals_discarded": 0, "originals_kept": {}}
    regions = _ok(["blur", "regions", "list", "-p", str(p), "--json"])
    assert [(r["file_name"], r["class"], r["state"], [round(v) for v in r["box"]]) for r in regions] == [
        ("astronaut.jpg", "face", "blur", FACE)]
    # the store holds the imported bytes, untouched
    assert {n: r.sha256 for n, r in _images(p).items()} == {f.name: _sha(f) for f in src.iterdir()}
    # the export blurs the face; every other pixel is the source's decode
    out = tmp_path / "coco"
    _ok(["export", str(out), "-f", "coco", "-p", str(p), "--json"])
    exported = sorted(f.name for f in out.rglob("*") if f.suffix in (".jpg", ".png"))
    assert exported == ["01.jpg", "astronaut.png"]
    source = _rgb((src / "astronaut.jpg").read_bytes())
    _only_inside(source, _rgb(next(out.rglob("astronaut.png")).read_bytes()), [regions[0]["box"]])
    assert next(out.rglob("01.jpg")).read_bytes() == (src / "01.jpg").read_bytes()
    # kept originals: the blur batch undoes, then the import
    _ok(["undo", "2", "-p", str(p), "--json"])
    _ok(["undo", "1", "-p", str(p), "--json"])


def test_settings_live_in_visionloop_yaml(src, tmp_path):
    p = _project(tmp_path)
    before = yaml.safe_load((p / "visionloop.yaml").read_text())
    assert "privacy" not in before
    got = _ok(["blur", "settings", "--on-import", "-p", str(p), "--json"])
    assert got == {"blur_on_import": True, "keep_originals": True, "plates": None, "vehicles": None,
                   "vehicle_classes": [], "baked": None}
    doc = yaml.safe_load((p / "visionloop.yaml").read_text())
    assert doc == {**before, "privacy": {"blur_on_import": True}}  # the other settings kept as they were
    # a plain import now blurs
    rep = _ok(["import", str(src), "-p", str(p), "--json"])
    assert rep["blur"]["regions"] == {"face": 1} and rep["blur"]["batch"] == 2
    # shown without options; turned off again
    assert _ok(["blur", "settings", "-p", str(p), "--json"])["blur_on_import"] is True
    _ok(["blur", "settings", "--no-on-import", "-p", str(p), "--json"])
    assert "privacy" not in yaml.safe_load((p / "visionloop.yaml").read_text())
    # a hand-edited setting of the wrong type is one line naming it, never ignored
    cfg = p / "visionloop.yaml"
    cfg.write_text(cfg.read_text() + "privacy:\n  keep_originals: perhaps\n")
    assert "privacy.keep_originals is 'perhaps', not true or false" in _fail(["import", str(src), "-p", str(p)])
    cfg.write_text(cfg.read_text().replace("keep_originals: perhaps", "keep_orignals: false"))
    assert "unknown setting privacy.keep_orignals" in _fail(["blur", "settings", "-p", str(p)])
    # no face-detector in the project: blur on import is refused before anything is saved
    q = tmp_path / "q"
    _ok(["init", str(q), "--json"])
    assert "this project has no face-detector" in _fail(["blur", "settings", "--on-import", "-p", str(q)])
    assert "privacy" not in yaml.safe_load((q / "visionloop.yaml").read_text())
    assert "this project has no face-detector" in _fail(["import", str(src), "--blur", "-p", str(q)])
    with Store.open(q) as store:
        assert store.stats().images == 0  # the import that could not be blurred was not made


def test_discarded_originals_stay_gone(src, tmp_path):
    p = _project(tmp_path)
    face_src = _sha(src / "astronaut.jpg")
    settings = _ok(["blur", "settings", "--on-import", "--discard-originals", "-p", str(p), "--json"])
    assert settings["keep_originals"] is False and settings["baked"]["batch"] is None  # nothing to blur yet
    rep = _ok(["import", str(src), "-p", str(p), "--json"])
    assert rep["blur"] == {"batch": 2, "images": 2, "skipped": 0, "regions": {"face": 1}, "baked": 1,
                           "originals_discarded": 1, "originals_kept": {}}
    images = _images(p)
    assert sorted(images) == ["01.jpg", "astronaut.png"]
    im = images["astronaut.png"]
    assert (im.format, im.orientation, im.meta["blurred_from"]) == ("png", 1, face_src)
    assert images["01.jpg"].sha256 == _sha(src / "01.jpg")  # no face: as imported
    regions = _ok(["blur", "regions", "list", "-p", str(p), "--json"])
    assert [(r["file_name"], r["state"], r["batch"]) for r in regions] == [("astronaut.png", "baked", 2)]
    with Store.open(p) as store:
        stored = store.blobs.get(im.sha256)
        # the original is gone from the blob store and its rows; the user's file is untouched
        assert not store.blobs.exists(face_src)
        with store.session() as s:
            assert s.get(BlobRow, face_src) is None and s.get(BlobRow, im.sha256) is not None
        assert face_src not in {sha for sha, _, _ in store.blobs.walk()}
    assert _sha(src / "astronaut.jpg") == face_src
    # the stored pixels are the source's except inside the face
    _only_inside(_rgb((src / "astronaut.jpg").read_bytes()), _rgb(stored), [regions[0]["box"]])
    # an export is the stored (blurred) bytes
    out = tmp_path / "coco"
    _ok(["export", str(out), "-f", "coco", "-p", str(p), "--json"])
    assert next(out.rglob("astronaut.png")).read_bytes() == stored
    assert not list(out.rglob("astronaut.jpg"))
    # not undoable: the pixels are gone (the blur batch, the import under it, the baked region)
    assert "the unblurred pixels are gone, so it cannot be undone" in _fail(["undo", "2", "-p", str(p)])
    assert "were blurred in place by batch 2" in _fail(["undo", "1", "-p", str(p)])
    assert "cannot bring the pixels back" in _fail(["blur", "regions", "reject", str(regions[0]["id"]),
                                                    "-p", str(p)])
    # importing the source again maps onto the blurred image: no new row, no unblurred blob
    again = _ok(["import", str(src), "-p", str(p), "--json"])
    assert (again["batch"], again["images_unchanged"], again["originals_blurred_in_project"]) == (None, 2, 1)
    assert "blur" not in again  # nothing added, nothing to blur
    # …also under another split: unlabelled bytes the project holds are not a second image (as any import)
    other = _ok(["import", str(src), "--split", "valid", "-p", str(p), "--json"])
    assert (other["batch"], other["images_already_present"], other["originals_blurred_in_project"]) == (None, 2, 1)
    with Store.open(p) as store:
        assert not store.blobs.exists(face_src) and store.stats().images == 2
    # a region the user adds later is blurred in at once (the project keeps no originals); the first blurred
    # blob, now unused, goes too
    box = [200, 380, 300, 440]
    add = _ok(["blur", "regions", "add", "astronaut.png", *map(str, box), "-p", str(p), "--json"])
    rows = _ok(["blur", "regions", "list", "astronaut.png", "-p", str(p), "--json"])
    assert [(r["id"], r["state"]) for r in rows] == [(1, "baked"), (add["region"], "baked")]
    now = _images(p)["astronaut.png"]
    assert now.meta["blurred_from"] == face_src  # the bytes first imported, through every later blur
    with Store.open(p) as store:
        assert now.sha256 != im.sha256 and not store.blobs.exists(im.sha256)
        _only_inside(_rgb(stored), _rgb(store.blobs.get(now.sha256)), [box])
    assert "cannot be undone" in _fail(["undo", str(add["batch"]), "-p", str(p)])
    assert _ok(["import", str(src), "-p", str(p), "--json"])["images_unchanged"] == 2  # still the blurred image


def test_discarding_later_blurs_what_was_found_and_the_web_serves_it(src, tmp_path):
    from fastapi.testclient import TestClient

    from visionloop.serve import Settings, create_app

    p = _project(tmp_path)
    face_src = _sha(src / "astronaut.jpg")
    _ok(["import", str(src), "--blur", "-p", str(p), "--json"])
    iid = _images(p)["astronaut.jpg"].id
    source = _rgb((src / "astronaut.jpg").read_bytes())
    with Store.open(p) as store, TestClient(create_app(p, Settings(refresh_s=0))) as c:  # the API's app, web UI on /
        # originals kept: the page's image and thumbnail are blurred all the same
        r = c.get(f"/images/{iid}/file")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        face = _ok(["blur", "regions", "list", "-p", str(p), "--json"])[0]["box"]
        _only_inside(source, _rgb(r.content), [face])
        assert c.get(f"/images/{iid}/file", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        t = c.get(f"/thumbs/{face_src}.jpg")
        assert t.status_code == 200 and t.headers["cache-control"] == "private, no-cache"
        cached = list((p / "cache" / "thumbs" / face_src[:2]).glob(face_src + "-*"))
        assert len(cached) == 1
        thumb_blob = cached[0].read_text().strip()
        assert store.blobs.exists(thumb_blob)

        done = _ok(["blur", "settings", "--discard-originals", "-p", str(p), "--json"])
        assert (done["baked"]["baked"], done["baked"]["originals_discarded"]) == (1, 1)
        im = _images(p)["astronaut.png"]
        assert im.id == iid and not store.blobs.exists(face_src)
        # the thumbnail cache of the original went with it
        assert not list((p / "cache" / "thumbs" / face_src[:2]).glob(face_src + "*"))
        assert not store.blobs.exists(thumb_blob)
        assert c.get(f"/thumbs/{face_src}.jpg").status_code == 404
        # the image page serves the stored (blurred) bytes; the old ETag no longer matches
        r2 = c.get(f"/images/{iid}/file", headers={"If-None-Match": r.headers["etag"]})
        assert r2.status_code == 200 and r2.content == store.blobs.get(im.sha256)
        _only_inside(source, _rgb(r2.content), [face])
        assert c.get(f"/thumbs/{im.sha256}.jpg").status_code == 200


class _Vehicles:
    """A vehicle detector as `gallery add --onnx` takes it: boxes (N, 2, 4) in its 512 px input and scores (N, 2, 2)
    over [person, car] — a car at CAR and a person beside it, whatever the image."""

    @staticmethod
    def module():
        import torch

        class Fixed(torch.nn.Module):
            def forward(self, x):
                n = x.shape[0]
                boxes = torch.tensor([list(CAR), [20.0, 20.0, 60.0, 120.0]]).expand(n, 2, 4)
                scores = torch.tensor([[0.1, 0.9], [0.95, 0.05]]).expand(n, 2, 2) + 0 * x.mean()
                return boxes, scores

        return Fixed()


@pytest.fixture(scope="module")
def vehicle_onnx(tmp_path_factory) -> tuple[Path, Path]:
    import io

    import torch

    folder = tmp_path_factory.mktemp("cars")
    buf = io.BytesIO()
    torch.onnx.export(_Vehicles.module(), (torch.zeros(1, 3, 512, 512),), buf, dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["boxes", "scores"], dynamic_axes={"images": {0: "batch"}})
    (folder / "cars.onnx").write_bytes(buf.getvalue())
    (folder / "names.txt").write_text("person\ncar\n")
    return folder / "cars.onnx", folder / "names.txt"


def test_vehicle_plate_bands_from_the_cli(src, tmp_path, vehicle_onnx):
    onnx, names = vehicle_onnx
    p = _project(tmp_path)
    _ok(["gallery", "add", "--onnx", str(onnx), "--classes", str(names), "--input", "512", "--preprocess", "stretch",
         "--name", "cars", "-p", str(p), "--json"])
    # folder mode: the astronaut (512 × 512, so the band is in its pixels as given) with its plate band blurred
    face = src / "astronaut.jpg"
    got = _ok(["blur", str(face), "--out", str(tmp_path / "out"), "--no-faces", "--vehicles", "cars", "-p", str(p),
               "--json"])
    assert [(r["class"], r["box"], r["source"]) for r in got["files"][0]["regions"]] == [
        ("plate", BAND, "cars (car band)")]
    copy = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    a, b, c, d = (int(v) for v in BAND)
    assert _hf(copy[b:d, a:c]) < 0.25 * _hf(_rgb(face.read_bytes())[b:d, a:c])
    # the person is no vehicle; a class list that names none of the model's classes is refused
    assert "detects none of the vehicle classes (bicycle); its classes: person, car" in _fail(
        ["blur", str(face), "--out", str(tmp_path / "o2"), "--vehicles", "cars", "--vehicle-classes", "bicycle",
         "-p", str(p)])
    people = _ok(["blur", str(face), "--out", str(tmp_path / "o3"), "--no-faces", "--vehicles", "cars",
                  "--vehicle-classes", "person", "-p", str(p), "--json"])
    assert [r["box"] for r in people["files"][0]["regions"]] == [[26.0, 75.0, 54.0, 115.0]]  # the person's band
    # project mode, at import: faces and the bands of both photos' cars (lund's 01.jpg is scaled from 512 px)
    rep = _ok(["import", str(src), "--blur", "--blur-vehicles", "cars", "-p", str(p), "--json"])
    assert rep["blur"]["regions"] == {"face": 1, "plate": 2}
    rows = _ok(["blur", "regions", "list", "-p", str(p), "--json"])
    lund = _images(p)["01.jpg"]
    sx, sy = lund.width / 512, lund.height / 512
    assert sorted((r["file_name"], r["class"], r["source"], r["box"]) for r in rows if r["class"] == "plate") == [
        ("01.jpg", "plate", "cars (car band)", [round(v * s, 2) for v, s in zip(BAND, (sx, sy, sx, sy), strict=True)]),
        ("astronaut.jpg", "plate", "cars (car band)", BAND)]
    # a re-run skips what the vehicle detector already did
    again = _ok(["blur", "--no-faces", "--vehicles", "cars", "-p", str(p), "--json"])
    assert (again["batch"], again["skipped"]) == (None, 2)


def test_a_folder_named_like_a_subcommand_is_a_folder(src, tmp_path):
    p = _project(tmp_path)
    folder = tmp_path / "settings"
    folder.mkdir()
    shutil.copy(src / "astronaut.jpg", folder)
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        got = _ok(["blur", "settings", "--out", str(tmp_path / "out"), "-p", str(p), "--json"])
        assert (got["images"], got["regions"]) == (1, 1)
        assert _ok(["blur", "settings", "-p", str(p), "--json"])["blur_on_import"] is False  # the subcommand
    finally:
        os.chdir(cwd)


def test_a_version_made_before_the_blur_keeps_its_original_and_is_refused(src, tmp_path):
    from visionloop.versions import create_version, export_version

    p = _project(tmp_path)
    face_src = _sha(src / "astronaut.jpg")
    recipe = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 1.0, "valid": 0.0,
                                                                               "test": 0.0}}}
    labelled = tmp_path / "cls"  # versions take labelled images: one class folder each
    for cls, name in (("person", "astronaut.jpg"), ("street", "01.jpg")):
        (labelled / cls).mkdir(parents=True)
        shutil.copy(src / name, labelled / cls)
    _ok(["import", str(labelled), "-f", "folders", "-p", str(p), "--json"])
    with Store.open(p) as store:
        before = create_version(store, recipe, name="before", workers=0)  # its astronaut is the unblurred original
        assert before.counts["images"] == 2
    _ok(["blur", "settings", "--discard-originals", "-p", str(p), "--json"])
    rep = _ok(["blur", "-p", str(p), "--json"])
    # blurred in place, but the version still holds the original: it stays, and says why
    assert (rep["baked"], rep["originals_discarded"], rep["originals_kept"]) == (1, 0, {face_src: "version_item"})
    from visionloop.cli.blur import describe
    from visionloop.geo.privacy import DetectReport

    assert describe(DetectReport(**rep)) == (
        "2 images: 1 face (batch 2); 1 image blurred in place, 0 originals removed from the blob store (the project "
        "keeps no originals; not undoable); 1 original still used elsewhere (version_item) stay")
    with Store.open(p) as store:
        assert store.blobs.exists(face_src)
        # …and the version cannot be exported with it any more; a new one is blurred
        with pytest.raises(VisionLoopError, match="blur regions of version before's images changed"):
            export_version(store, before.name, tmp_path / "v1", format="coco")
        after = create_version(store, recipe, name="after", workers=0)
        export_version(store, after.name, tmp_path / "v2", format="coco")
        stored = store.blobs.get(_images(p)["person/astronaut.png"].sha256)
    assert next((tmp_path / "v2").rglob("astronaut.png")).read_bytes() == stored


def test_api_uploads_follow_the_policy(src, tmp_path):
    from visionloop.serve.uploads import import_uploads

    p = _project(tmp_path)
    _ok(["blur", "settings", "--on-import", "--discard-originals", "-p", str(p), "--json"])
    data = (src / "astronaut.jpg").read_bytes()
    with Store.open(p) as store:
        got = import_uploads(store, [("astronaut.jpg", data)], annotations=None, format=None, split=None,
                             max_pixels=10**8)
        assert (got["images_added"], got["blur"]["regions"], got["blur"]["baked"]) == (1, {"face": 1}, 1)
        assert not store.blobs.exists(_sha(src / "astronaut.jpg"))
        again = import_uploads(store, [("astronaut.jpg", data)], annotations=None, format=None, split=None,
                               max_pixels=10**8)
        assert (again["batch"], again["originals_blurred_in_project"]) == (None, 1) and "blur" not in again
        assert store.stats().images == 1 and not store.blobs.exists(_sha(src / "astronaut.jpg"))


def test_a_hand_edited_policy_applies_at_the_next_blur(src, tmp_path):
    p = _project(tmp_path)
    _ok(["import", str(src), "--blur", "-p", str(p), "--json"])  # the face found while originals are kept
    cfg = p / "visionloop.yaml"
    cfg.write_text(cfg.read_text() + "privacy:\n  keep_originals: false\n")
    rep = _ok(["blur", "-p", str(p), "--json"])  # nothing new to find; the pending face is blurred in place
    assert (rep["batch"], rep["regions"], rep["skipped"], rep["baked"], rep["originals_discarded"]) == (3, {}, 1, 1, 1)
    assert [r["state"] for r in _ok(["blur", "regions", "list", "-p", str(p), "--json"])] == ["baked"]
