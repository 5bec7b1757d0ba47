"""Polylines through the kernels and ops: mapped exactly, cut exactly at the canvas's edges (a line leaving and
coming back becomes two annotations, one wholly off the canvas is gone), visible share = length kept."""

import numpy as np
import pytest

from visionloop.core import Annotation, Box, Polyline
from visionloop.transforms import affine as A
from visionloop.transforms import kernels, ops
from visionloop.transforms.choices import ResizeMode
from visionloop.transforms.frame import Frame

W, H = 40, 30
LINE = Polyline((1.0, 2.0, 11.0, 2.0, 6.0, 9.5))


def test_flips_and_turns_are_exact():
    assert kernels.hflip(LINE, width=W, height=H) == (Polyline((39.0, 2.0, 29.0, 2.0, 34.0, 9.5)), 1.0)
    assert kernels.vflip(LINE, width=W, height=H) == (Polyline((1.0, 28.0, 11.0, 28.0, 6.0, 20.5)), 1.0)
    g, vis = kernels.rot90(LINE, k=1, width=W, height=H)
    assert (g, vis) == (Polyline.from_points([(y, W - x) for x, y in LINE.xy()]), 1.0)


def test_a_cut_into_two_needs_affine_pieces():
    u = Polyline((5, 5, 25, 5, 25, 8, 5, 8))
    with pytest.raises(ValueError, match="cuts this polyline into 2 lines"):
        kernels.affine(u, matrix=A.identity(), size=(20, 10))
    pieces, visible = kernels.affine_pieces(u, matrix=A.identity(), size=(20, 10))
    assert pieces == (Polyline((5, 5, 20, 5)), Polyline((20, 8, 5, 8)))
    assert visible == pytest.approx(30 / 43)
    assert kernels.affine_pieces(Box(1, 1, 3, 3), matrix=A.identity(), size=(20, 10)) == ((Box(1, 1, 3, 3),), 1.0)
    assert kernels.affine_pieces(u, matrix=A.translate(100, 0), size=(20, 10)) == ((), 0.0)


def _frame(anns, size=(W, H)):
    return Frame.from_array(np.zeros((size[1], size[0], 3), np.uint8), anns, bgr=True)


def test_window_splits_a_line_into_two_annotations_and_drops_one_outside():
    u = Annotation("lane", Polyline((5, 5, 25, 5, 25, 8, 5, 8)), attributes={"kind": "dashed"}, track_id=4)
    gone = Annotation("lane", Polyline((30, 20, 38, 25)))
    f = _frame([u, gone, Annotation("car", Box(2, 2, 6, 6))])
    ops.Window(x0=0, y0=0, x1=20, y1=10)(f, np.random.default_rng(0))
    assert [(a.label, a.geometry, a.attributes, a.track_id) for a in f.annotations] == [
        ("lane", Polyline((5, 5, 20, 5)), {"kind": "dashed"}, 4),
        ("lane", Polyline((20, 8, 5, 8)), {"kind": "dashed"}, 4),
        ("car", Box(2, 2, 6, 6), {}, None),
    ]
    assert (f.outside, f.dropped) == (1, 0)


def test_min_visibility_counts_length():
    f = _frame([Annotation("lane", Polyline((10, 5, 30, 5)))])  # 20 px, 10 of them inside the window
    f.min_visibility = 0.6
    ops.Window(x0=0, y0=0, x1=20, y1=10)(f, np.random.default_rng(0))
    assert f.annotations == [] and f.dropped == 1
    f = _frame([Annotation("lane", Polyline((10, 5, 30, 5)))])
    f.min_visibility = 0.5
    ops.Window(x0=0, y0=0, x1=20, y1=10)(f, np.random.default_rng(0))
    assert [a.geometry for a in f.annotations] == [Polyline((10, 5, 20, 5))]


def test_resize_and_letterbox_scale_points_exactly():
    f = _frame([Annotation("lane", Polyline((0, 0, 40, 30, 20, 10)))])
    ops.Resize(width=80, height=80, mode=ResizeMode.FIT)(f, np.random.default_rng(0))
    # scale 2 (80×60), bars of 10 px above and below
    assert [a.geometry for a in f.annotations] == [Polyline((0, 10, 80, 70, 40, 30))]


def test_mosaic_keeps_both_parts_of_a_cut_line():
    main = Frame.from_array(np.zeros((100, 200, 3), np.uint8), [Annotation("lane", Polyline((20, 10, 60, 50)))])
    p1 = Frame.from_array(np.zeros((100, 400, 3), np.uint8),  # its cell crops 50 px left and right (x 100..300 kept)
                          [Annotation("lane", Polyline((80, 20, 320, 20, 320, 80, 80, 80)))])
    p2 = Frame.from_array(np.zeros((50, 100, 3), np.uint8), [])
    p3 = Frame.from_array(np.zeros((200, 200, 3), np.uint8), [])
    main.partners = [p1, p2, p3]
    ops.Mosaic(jitter=0)(main, np.random.default_rng(0))
    assert [a.geometry for a in main.annotations] == [
        Polyline((10, 5, 30, 25)),  # top-left, scale 1/2
        Polyline((100, 10, 200, 10)),  # top-right: (80..320) / 2 - 50 + 100, cut at the cell's edges
        Polyline((200, 40, 100, 40)),
    ]


def test_box_level_flip_moves_the_line_inside_its_box():
    f = _frame([Annotation("lane", Polyline((10, 10, 30, 20)))])
    params = {"boxes": [{"index": 0, "roi": (10, 10, 30, 20), "matrix": A.hflip(20), "gain": 1.0, "offset": 0.0,
                         "sigma": 0.0, "noise": 0.0, "seed": 0}]}
    ops.BoxLevel(flip_h=True).apply(f, params)
    (a,) = f.annotations
    assert a.geometry == Polyline((30, 10, 10, 20)) and a.bbox == Box(10, 10, 30, 20)
