import numpy as np
import pytest
from pycocotools import mask as mask_utils

from visionloop.core import (
    Box,
    ClassMap,
    Keypoints,
    Mask,
    Polygon,
    RotatedBox,
    box_iou_matrix,
    iou,
    mask_to_polygon,
    polygon_to_mask,
)


def test_box_validates_and_converts():
    b = Box.from_xywh(10, 20, 30, 40)
    assert (b.x0, b.y0, b.x1, b.y1) == (10, 20, 40, 60)
    assert b.area == 1200
    assert b.cxcywh() == (25, 40, 30, 40)
    assert Box.from_cxcywh(25, 40, 30, 40) == b
    with pytest.raises(ValueError, match="inverted"):
        Box(5, 0, 1, 1)
    with pytest.raises(ValueError, match="finite"):
        Box(0, 0, float("nan"), 1)
    assert Box(-5, -5, 20, 30).clip(10, 10) == Box(0, 0, 10, 10)


def test_iou_matches_matrix_and_hand_values():
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert iou(a, b) == pytest.approx(50 / 150)
    assert iou(a, Box(20, 20, 30, 30)) == 0.0
    m = box_iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [0, 0, 10, 10]]))
    np.testing.assert_allclose(m, [[50 / 150, 1.0]])
    # pycocotools as the independent oracle
    oracle = mask_utils.iou([[0, 0, 10, 10]], [[5, 0, 10, 10], [0, 0, 10, 10]], [0, 0])
    np.testing.assert_allclose(m, oracle)


def test_polygon_validation_and_area():
    p = Polygon(((0, 0, 4, 0, 4, 3),))
    assert p.area == 6
    assert p.bounds() == Box(0, 0, 4, 3)
    two = Polygon(((0, 0, 2, 0, 2, 2, 0, 2), (10, 10, 12, 10, 12, 12)))
    assert two.area == 4 + 2
    with pytest.raises(ValueError, match="at least 3"):
        Polygon(((0, 0, 1, 1),))
    with pytest.raises(ValueError, match="odd"):
        Polygon(((0, 0, 1, 1, 2),))


def test_mask_rle_roundtrip_against_pycocotools():
    arr = np.zeros((7, 9), np.uint8)
    arr[1:4, 2:6] = 1
    arr[5, 8] = 1
    m = Mask.from_array(arr)
    assert m.area == 13
    assert m.bounds() == Box(2, 1, 9, 6)
    np.testing.assert_array_equal(m.to_array(), arr)
    # the compressed counts are exactly pycocotools' own
    assert m.counts == mask_utils.encode(np.asfortranarray(arr))["counts"]
    runs = m.uncompressed_counts()
    assert sum(runs) == 63
    assert Mask.from_uncompressed(runs, 7, 9) == m
    with pytest.raises(ValueError, match="sum to"):
        Mask.from_uncompressed([1, 2], 7, 9)


def test_polygon_to_mask_is_cocos_rasterisation():
    p = Polygon(((1, 1, 8, 1, 8, 6, 1, 6),))
    m = polygon_to_mask(p, 10, 12)
    oracle = mask_utils.merge(mask_utils.frPyObjects([list(p.rings[0])], 10, 12))
    assert m.counts == oracle["counts"]
    back = mask_to_polygon(m)
    assert back is not None and back.bounds().x0 == 1


def test_rotated_box_corners_roundtrip():
    r = RotatedBox(50, 40, 20, 10, 30)
    again = RotatedBox.from_corners(list(r.corners()))
    assert again.cx == pytest.approx(50) and again.cy == pytest.approx(40)
    assert again.w == pytest.approx(20) and again.h == pytest.approx(10) and again.angle == pytest.approx(30)
    flat = RotatedBox(10, 10, 4, 2, 0)
    assert flat.bounds() == Box(8, 9, 12, 11)


def test_keypoints_bounds_ignore_unlabelled():
    k = Keypoints((10, 20, 2, 0, 0, 0, 30, 5, 1))
    assert k.count == 3 and k.labelled == 2
    assert k.bounds() == Box(10, 5, 30, 20)


def test_classmap_refuses_duplicates_and_keeps_ids():
    cm = ClassMap.from_names(["cat", "dog"], start=1)
    assert cm["dog"].id == 2 and cm.index("dog") == 1
    cm.add("bird", id=7)
    assert cm.add("bird").id == 7
    assert cm.names == ["cat", "dog", "bird"]
    with pytest.raises(ValueError, match="duplicate class id"):
        ClassMap.from_names(["a"]).add("b", id=0)
