"""EXIF orientation: auto-orient bakes it into the pixels; without any pixel op the original bytes stay."""

import io

import cv2
import numpy as np
from PIL import Image

from visionloop.versions import create_version, version_samples

from .conftest import new_project


def _sideways_dataset(root):
    """One 60×40 upright image with a red square at x 5..15, y 20..30, stored turned (EXIF orientation 6)."""
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[20:30, 5:15] = (255, 0, 0)  # RGB red
    raw = np.rot90(upright, 1)  # what the camera wrote: 40 wide, 60 high
    exif = Image.Exif()
    exif[0x0112] = 6  # the raw image is turned 90° clockwise to be upright
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(raw)).save(buf, "JPEG", quality=100, exif=exif)
    (root / "images").mkdir(parents=True)
    (root / "images" / "turned.jpg").write_bytes(buf.getvalue())
    (root / "coco.json").write_text(
        '{"images": [{"id": 1, "file_name": "images/turned.jpg", "width": 60, "height": 40}],'
        ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 20, 10, 10], "area": 100,'
        ' "iscrowd": 0}], "categories": [{"id": 1, "name": "square"}]}')
    return root / "coco.json"


def test_auto_orient_bakes_orientation_into_pixels(tmp_path):
    store = new_project(tmp_path / "p", _sideways_dataset(tmp_path / "data"))
    src = next(iter(store.samples()))
    assert (src.image.orientation, src.image.width, src.image.height) == (6, 60, 40)
    info = create_version(store, {"schema": 1, "split": {"ratios": {"train": 1, "valid": 0, "test": 0}}},
                          workers=0)
    (s,) = list(version_samples(store, info.name))
    assert s.image.orientation == 1 and s.image.sha256 != src.image.sha256 and (s.image.width, s.image.height) == (60, 40)
    img = cv2.imread(s.image.path, cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR)
    assert img.shape == (40, 60, 3)
    b = s.annotations[0].geometry
    inside = img[int(b.y0) + 2:int(b.y1) - 2, int(b.x0) + 2:int(b.x1) - 2]
    assert (inside[:, :, 2] > 200).all() and (inside[:, :, :2] < 60).all()  # BGR: the red square is under its box
    assert img[:15].max() < 60  # and nothing red elsewhere


def test_without_auto_orient_nothing_to_do_keeps_the_bytes(tmp_path):
    store = new_project(tmp_path / "p", _sideways_dataset(tmp_path / "data"))
    src = next(iter(store.samples()))
    info = create_version(store, {"schema": 1, "preprocess": {"auto_orient": False}}, workers=0)
    (s,) = list(version_samples(store, info.name))
    assert (s.image.sha256, s.image.orientation) == (src.image.sha256, 6)
    assert s.annotations == src.annotations
