"""Tiling real raccoon photos 2×2 gives the boxes computed by hand from their VOC files."""

import pytest

from visionloop.core import Box
from visionloop.versions import create_version, version_samples

from .conftest import new_project, raccoon_subset


@pytest.fixture(scope="module")
def tiled(raccoon, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiles")
    store = new_project(root / "p", raccoon_subset(raccoon, root / "voc", ["raccoon-1", "raccoon-12"]))
    info = create_version(store, {"schema": 1, "split": {"ratios": {"train": 1, "valid": 0, "test": 0}},
                                  "preprocess": {"tile": {"rows": 2, "cols": 2}}, "min_visibility": 0.2},
                          workers=0)
    return store, info


def test_tiles_2x2_hand_computed(tiled):
    store, info = tiled
    got = {s.image.file_name: (s.image.width, s.image.height, [a.geometry for a in s.annotations])
           for s in version_samples(store, info.name)}
    # raccoon-1.jpg: 650×417, VOC box xmin 81 ymin 88 xmax 522 ymax 408 → store box (80, 87, 522, 408)
    # (VOC's 1-based inclusive pixels: x0 = xmin − 1, x1 = xmax). Tiles cut at x = 650 // 2 = 325 and
    # y = 417 // 2 = 208; the box's area is 442 × 321 = 141,882.
    #   tile 0-0 [0,325)×[0,208):   (80, 87, 325, 208)  245 × 121 → 0.209 of the box: kept
    #   tile 0-1 [325,650)×[0,208): (0, 87, 197, 208)   197 × 121 → 0.168 < 0.2: dropped
    #   tile 1-0 [0,325)×[208,417): (80, 0, 325, 200)   245 × 200 → 0.345: kept
    #   tile 1-1:                    (0, 0, 197, 200)   197 × 200 → 0.278: kept
    assert got["images/raccoon-1_tile-0-0.jpg"] == (325, 208, [Box(80, 87, 325, 208)])
    assert got["images/raccoon-1_tile-0-1.jpg"] == (325, 208, [])
    assert got["images/raccoon-1_tile-1-0.jpg"] == (325, 209, [Box(80, 0, 325, 200)])
    assert got["images/raccoon-1_tile-1-1.jpg"] == (325, 209, [Box(0, 0, 197, 200)])
    # raccoon-12.jpg: 259×194, boxes (28, 21, 126, 181) → A (27, 20, 126, 181), area 99 × 161 = 15,939,
    # and (85, 33, 235, 193) → B (84, 32, 235, 193), area 151 × 161 = 24,311. Cuts x = 129, y = 97.
    #   tile 0-0: A (27, 20, 126, 97) 0.478 kept;      B (84, 32, 129, 97) 45 × 65 → 0.120 dropped
    #   tile 0-1: A none;                              B (0, 32, 106, 97) 106 × 65 → 0.283 kept
    #   tile 1-0: A (27, 0, 126, 84) 0.522 kept;       B (84, 0, 129, 96) 45 × 96 → 0.178 dropped
    #   tile 1-1: A none;                              B (0, 0, 106, 96) 106 × 96 → 0.419 kept
    assert got["images/raccoon-12_tile-0-0.jpg"] == (129, 97, [Box(27, 20, 126, 97)])
    assert got["images/raccoon-12_tile-0-1.jpg"] == (130, 97, [Box(0, 32, 106, 97)])
    assert got["images/raccoon-12_tile-1-0.jpg"] == (129, 97, [Box(27, 0, 126, 84)])
    assert got["images/raccoon-12_tile-1-1.jpg"] == (130, 97, [Box(0, 0, 106, 96)])
    assert len(got) == 8
    assert info.counts["generation"]["annotations_dropped"] == 3


def test_tile_pixels_are_the_source_pixels(tiled, raccoon):
    import cv2
    import numpy as np

    store, info = tiled
    src = cv2.imread(str(raccoon / "images" / "raccoon-1.jpg"))
    tile = next(s for s in version_samples(store, info.name) if s.image.file_name.endswith("raccoon-1_tile-1-1.jpg"))
    out = cv2.imread(tile.image.path)
    assert out.shape == (209, 325, 3)
    diff = np.abs(out.astype(int) - src[208:, 325:].astype(int))
    assert diff.mean() < 2.0  # the same pixels, re-encoded at quality 95
