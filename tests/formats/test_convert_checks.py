"""convert makes the checks import makes (issue 11 item 10): broken images and impossible boxes are left
out and listed (exit 3), or with --strict refused with nothing written; with --images none geometry is
checked against the declared sizes."""

import json

import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core import FormatError, ImageError
from visionloop.formats.convert import convert


def _jpeg(w, h, colour=(10, 200, 30)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _noise_jpeg(w, h) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _coco(folder, images, anns):
    doc = {"images": [{"id": i + 1, "file_name": n, "width": w, "height": h} for i, (n, w, h) in enumerate(images)],
           "annotations": [{"id": k + 1, "image_id": img, "category_id": 1, "bbox": bb, "iscrowd": 0}
                           for k, (img, bb) in enumerate(anns)],
           "categories": [{"id": 1, "name": "thing"}]}
    p = folder / "ann.json"
    p.write_text(json.dumps(doc))
    return p

runner = CliRunner()


@pytest.fixture
def broken(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.jpg").write_bytes(_jpeg(30, 20))
    (src / "out.jpg").write_bytes(_jpeg(30, 20))
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("not a picture")
    full = _noise_jpeg(200, 100)
    (src / "cut.jpg").write_bytes(full[: len(full) // 2])  # no end-of-image marker: repaired, kept
    (src / "stub.jpg").write_bytes(full[:150])  # cut inside its header: nothing to decode
    images = [("ok.jpg", 30, 20), ("out.jpg", 30, 20), ("empty.jpg", 30, 20), ("text.jpg", 30, 20),
              ("cut.jpg", 200, 100), ("stub.jpg", 200, 100)]
    # ok: one box partly outside (clipped); out: a box entirely outside (8.46 × the width in YOLO before)
    return _coco(src, images, [(1, [20, 5, 20, 5]), (2, [250, 5, 10, 5]), (5, [1, 1, 5, 5])])


EXPECTED = [
    {"file": "empty.jpg", "element": None, "reason": "empty file, not an image"},
    {"file": "out.jpg", "element": "annotation 1 (thing)", "reason": "box (250, 5)–(260, 10) lies outside the 30×20 image"},
    {"file": "stub.jpg", "element": None,
     "reason": "truncated JPEG (the data ends before the end-of-image marker) and no decoder can read it"},
    {"file": "text.jpg", "element": None,
     "reason": "not a readable image (cannot identify image file <_io.BytesIO object at ADDR>)"},
]


def _norm(records):
    import re

    return sorted(({**r, "reason": re.sub(r"0x[0-9a-f]+", "ADDR", r["reason"])} for r in records),
                  key=lambda r: r["file"])


def test_convert_leaves_out_and_lists_what_import_would_quarantine(broken, tmp_path):
    report = convert(broken, tmp_path / "y", to="yolo", workers=1)
    assert _norm(report.quarantined) == EXPECTED
    assert report.images == 2 and report.fixes == {"out_of_bounds": 1, "clipped": 1, "truncated_image": 1}
    labels = sorted(p.name for p in (tmp_path / "y").rglob("*.txt") if p.name != "classes.txt")
    assert labels == ["cut.txt", "ok.txt"]
    line = next((tmp_path / "y").rglob("ok.txt")).read_text().split()
    assert line == ["0", "0.833333", "0.375000", "0.333333", "0.250000"]  # x 20..30 of 30, clipped


def test_convert_strict_refuses_and_writes_nothing(broken, tmp_path):
    with pytest.raises((ImageError, FormatError)):
        convert(broken, tmp_path / "y", to="yolo", strict=True, workers=1)
    assert not (tmp_path / "y").exists()


def test_cli_convert_exit_code_and_json(broken, tmp_path):
    r = runner.invoke(app, ["convert", str(broken), str(tmp_path / "y"), "--to", "yolo", "--json"])
    assert r.exit_code == 3
    assert _norm(json.loads(r.output)["quarantined"]) == EXPECTED
    r = runner.invoke(app, ["convert", str(broken), str(tmp_path / "z"), "--to", "yolo", "--strict"])
    assert r.exit_code == 1 and not (tmp_path / "z").exists()


def test_images_none_checks_geometry_against_declared_sizes(broken, tmp_path):
    report = convert(broken, tmp_path / "c", to="coco", images="none", workers=1)
    assert report.quarantined == [{"file": "out.jpg", "element": "annotation 1 (thing)",
                                   "reason": "box (250, 5)–(260, 10) lies outside the 30×20 image"}]
    assert report.images == 5  # the image files are not read: empty.jpg, text.jpg and stub.jpg pass
