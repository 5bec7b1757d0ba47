"""Annotation files whose image is not there (issue 12, categories 3 and 4): a mask or label file a reader finds
and cannot pair with an image is counted in `skipped` (and --strict refuses it) — before, converting such a
folder wrote 0 images with exit 0. Each dataset is written by visionloop's own writer for that format, then its
images (.jpg; the annotations are .png, .txt, .json) are removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionloop.core.errors import FormatError
from visionloop.demo import synthetic
from visionloop.formats import ImageMode, registry
from visionloop.formats.base import count_skips
from visionloop.formats.convert import convert

CASES = {
    "semseg": {"mask: no image for it": 3},
    "camvid": {"label PNG: no image for it": 3},
    "ade20k": {"annotation PNG: no image for it": 3},
    "kitti_seg": {"instance PNG: no image for it": 3, "semantic PNG: no image for it": 3},
    "mapillary": {"annotation PNG: no image for it": 6},  # instances/ and labels/ of each image
    "cityscapes": {"ground truth: no image for it in leftImg8bit/": 3},
    "dota": {"label file: no image for it in images/": 3},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_annotation_files_without_images_are_counted(name: str, tmp_path: Path) -> None:
    samples = list(synthetic.shapes(3, folder=tmp_path / "render"))
    out = tmp_path / name
    registry.write(samples, out, format=name, images=ImageMode.COPY)
    for image in out.rglob("*.jpg"):
        image.unlink()
    with count_skips() as skips:
        assert list(registry.read(out, format=name)) == []
    assert dict(skips) == CASES[name]
    with pytest.raises(FormatError, match="no image for it"):
        convert(out, tmp_path / "o", from_=name, to="datumaro", images="none", strict=True, workers=1)
