"""Tiled inference: grid geometry, the merge (cut boxes, NMS, WBF) on fixed boxes, small objects found."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.core.errors import VisionLoopError
from visionloop.infer import Predictor
from visionloop.infer.tiles import Tile, cut_mask, merge, parse_tile, tile_grid, wbf


def test_grid_overlaps_and_covers():
    assert tile_grid(256, 256, 5, 5, overlap=0.25)[:6] == [
        Tile(0, 0, 64, 64), Tile(48, 0, 112, 64), Tile(96, 0, 160, 64), Tile(144, 0, 208, 64),
        Tile(192, 0, 256, 64), Tile(0, 48, 64, 112)]
    assert tile_grid(100, 60, 1, 2, overlap=0.2) == [Tile(0, 0, 56, 60), Tile(44, 0, 100, 60)]
    assert tile_grid(10, 10, 1, 1) == [Tile(0, 0, 10, 10)]
    assert parse_tile("2x3") == (2, 3)
    for bad in ("2", "0x2", "ax2"):
        with pytest.raises(VisionLoopError):
            parse_tile(bad)
    with pytest.raises(VisionLoopError):
        tile_grid(100, 100, 2, 2, overlap=1.0)


def test_cut_mask_only_inner_edges():
    t = Tile(48, 0, 112, 64)  # top edge is the image border, the others are not
    boxes = np.array([[49, 10, 60, 20], [60, 0, 70, 10], [100, 30, 112, 40], [60, 55, 70, 64], [60, 20, 70, 30]])
    assert cut_mask(boxes, t, 256, 64).tolist() == [True, False, True, False, False]
    assert cut_mask(boxes, t, 256, 256).tolist() == [True, False, True, True, False]


def test_merge_drops_cut_pieces_and_fuses_duplicates():
    boxes = np.array([[50, 10, 64, 22],    # tile 0: a piece of the object cut by its right edge
                      [52, 10, 70, 22],    # tile 1: the whole object
                      [53, 11, 71, 23],    # tile 2 (or the whole image): the same object again, lower score
                      [200, 5, 230, 40],   # tile 0: cut, nobody sees it whole → kept
                      [52, 10, 70, 22]])   # tile 1, other class: never merged with class 0
    scores = np.array([0.95, 0.9, 0.8, 0.5, 0.7])
    labels = np.array([0, 0, 0, 0, 1])
    cut = np.array([True, False, False, True, False])
    source = np.array([0, 1, 2, 0, 1])
    b, s, lab = merge(boxes, scores, labels, cut, source, iou=0.5, method="nms")
    assert b.tolist() == [[52, 10, 70, 22], [52, 10, 70, 22], [200, 5, 230, 40]]
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert lab.tolist() == [0, 1, 0]
    b, s, lab = merge(boxes, scores, labels, cut, source, iou=0.5, method="wbf")
    fused = (np.array([52, 10, 70, 22]) * 0.9 + np.array([53, 11, 71, 23]) * 0.8) / 1.7
    assert b[0] == pytest.approx(fused.astype(np.float32))
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.5]) and lab.tolist() == [0, 1, 0]
    # a cut box is not dropped because of a box from its own tile (NMS then keeps the higher score)
    b, _, _ = merge(boxes[:2], scores[:2], labels[:2], cut[:2], np.array([1, 1]), iou=0.5)
    assert b.tolist() == [[50, 10, 64, 22]]
    with pytest.raises(VisionLoopError):
        merge(boxes, scores, labels, cut, source, method="soft")


def test_wbf_single_boxes_unchanged():
    b, s = wbf(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.3, 0.6]), 0.5)
    assert b.tolist() == [[20, 20, 30, 30], [0, 0, 10, 10]] and s.tolist() == [0.6, 0.3]


def test_fixed_boxes_per_tile_merged_exactly(make_fixed):
    # every 64 px tile returns a box at its centre and one cut by its right edge (input pixels = tile pixels)
    p = Predictor(make_fixed(64, [[24, 24, 40, 40], [56, 20, 64, 44]], [[0.9, 0.0], [0.0, 0.6]]))
    image = np.zeros((64, 112, 3), np.uint8)  # 1x2 tiles, overlap 0.25 → tiles x 0..64 and 48..112
    pred = p.predict(image, tile=(1, 2), overlap=0.25, conf=0.25)
    # centres of both tiles; tile 0's edge box (x 56..64) touches the inner edge: cut, but nothing covers
    # it (tile 1 sees only its own boxes there), so it stays; tile 1's edge box ends at the image border
    assert pred.boxes.tolist() == [[24, 24, 40, 40], [72, 24, 88, 40], [56, 20, 64, 44], [104, 20, 112, 44]]
    assert pred.scores.tolist() == pytest.approx([0.9, 0.9, 0.6, 0.6])
    assert pred.labels.tolist() == [0, 0, 1, 1]


def _squares_image(corners, size=256):
    img = np.zeros((size, size, 3), np.uint8)
    for x, y in corners:
        img[y:y + 12, x:x + 12] = 255
    return img


def test_small_objects_found_only_with_tiles(squares_onnx):
    corners = [(8, 8), (52, 100), (60, 60), (120, 164), (200, 236), (236, 8)]
    image = _squares_image(corners)
    p = Predictor(squares_onnx)
    assert len(p.predict(image, conf=0.9).boxes) == 0  # 256 px squeezed into 64: 12 px squares are 3 px
    pred = p.predict(image, tile=(5, 5), overlap=0.25, conf=0.9)
    expected = sorted([x, y, x + 12, y + 12] for x, y in corners)
    assert sorted(pred.boxes.tolist()) == expected  # one box each, exact, although most are seen by 2-4 tiles
    assert pred.scores.tolist() == [1.0] * len(corners)
    wbf_pred = p.predict(image, tile=(5, 5), overlap=0.25, conf=0.9, merge="wbf", full=True)
    assert sorted(wbf_pred.boxes.tolist()) == expected
