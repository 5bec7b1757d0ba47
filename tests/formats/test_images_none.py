"""`--images none`: annotations converted alone wherever they carry the image size (issue 12, category 4).

Fixtures: the raccoon dataset's own VOC XML (written by labelImg) without its images; its `data/test.record`,
written by the TensorFlow Object Detection API tooling, whose images are embedded; a LabelMe file whose image
is only in `imageData` (labelme's `label_file.py` writes base64 bytes there when "save image data" is on).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import ImageError
from visionloop.core.geometry import Box
from visionloop.formats import datumaro
from visionloop.formats.convert import convert


def test_voc_with_size_converts_without_images(raccoon: Path, tmp_path: Path) -> None:
    src = tmp_path / "voc" / "Annotations"
    src.mkdir(parents=True)
    shutil.copy(raccoon / "annotations" / "raccoon-1.xml", src)  # <size> 650×417, one box 81,88,522,408
    report = convert(tmp_path / "voc", tmp_path / "out", to="datumaro", images="none", workers=1)
    assert report.images == 1 and report.annotations == {"box": 1} and not report.quarantined
    (sample,) = list(datumaro.read(tmp_path / "out"))
    assert sample.image.file_name.endswith("/raccoon-1.jpg") and sample.image.size == (650, 417)
    assert [a.geometry for a in sample.annotations] == [Box(80, 87, 522, 408)]
    # with images asked for, the missing image is refused, and the error says how to convert without
    with pytest.raises(ImageError) as e:
        convert(tmp_path / "voc", tmp_path / "out2", to="datumaro", strict=True, workers=1)
    assert "pass --images none" in str(e.value)


def test_tfrecord_embedded_images(raccoon: Path, tmp_path: Path) -> None:
    """The images a TFRecord embeds are extracted to a temporary folder: they are the dataset's own bytes, not
    "outside the dataset folder" (this was refused, with or without images)."""
    rows = (raccoon / "data" / "test_labels.csv").read_text().splitlines()[1:]  # the same 40 photos, 1 box a row
    for mode in ("none", "copy"):
        report = convert(raccoon / "data" / "test.record", tmp_path / mode, to="datumaro", images=mode, workers=1)
        assert report.images == len({r.split(",")[0] for r in rows}) == 40
        assert report.annotations == {"box": len(rows)} == {"box": 44}
    assert len(list((tmp_path / "copy" / "images").rglob("*.jpg"))) == 40


def test_labelme_image_data_only(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6)).save(buf, "PNG")
    doc = {"version": "5.5.0", "flags": {}, "imagePath": "..\\\\elsewhere\\\\b.png", "imageHeight": 6, "imageWidth": 8,
           "imageData": base64.b64encode(buf.getvalue()).decode(),
           "shapes": [{"label": "cat", "points": [[1, 1], [5, 4]], "group_id": None, "description": "",
                       "shape_type": "rectangle", "flags": {}, "mask": None}]}
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "b.json").write_text(json.dumps(doc))
    for mode in ("none", "copy"):
        report = convert(tmp_path / "lm", tmp_path / mode, to="datumaro", from_="labelme", images=mode, workers=1)
        assert report.images == 1 and report.annotations == {"box": 1} and not report.quarantined
    (sample,) = list(datumaro.read(tmp_path / "none"))
    assert [a.geometry for a in sample.annotations] == [Box(1, 1, 5, 4)] and sample.image.size == (8, 6)


def test_convert_cli_suggests_images_none(raccoon: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from visionloop.cli.main import app

    src = tmp_path / "voc" / "Annotations"
    src.mkdir(parents=True)
    shutil.copy(raccoon / "annotations" / "raccoon-1.xml", src)
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "voc"), str(tmp_path / "out"), "--to", "datumaro"])
    assert result.exit_code == 3
    text = " ".join(result.output.split())  # rich wraps lines at the terminal width
    assert "1 left out because an image file is not there" in text and "pass --images none" in text
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "voc"), str(tmp_path / "out2"), "--to", "datumaro",
                                      "--images", "none"])
    assert result.exit_code == 0 and "1 images, 1 box" in " ".join(result.output.split())
