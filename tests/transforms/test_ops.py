"""Ops move pixels and geometry together: fused warps, letterbox, mosaic, Compose at train time."""

import numpy as np
import pytest

from visionloop.core import Annotation, Box, ImageRef, Sample
from visionloop.transforms import ops
from visionloop.transforms.choices import Edges, ResizeMode
from visionloop.transforms.frame import Frame

RNG = np.random.default_rng(0)


def _frame(img, boxes=()):
    return Frame.from_array(img, [Annotation("thing", b) for b in boxes], bgr=True)


def test_flip_turn_window_fuse_into_exact_pixel_moves():
    img = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    f = _frame(img, [Box(4.0, 5.0, 12.0, 9.0)])
    r = np.random.default_rng(0)
    for op in (ops.HFlip(p=1.0), ops.Rot90(turns=(1,)), ops.Window(x0=2, y0=3, x1=20, y1=25)):
        op(f, r)
    want = np.rot90(np.flip(img, 1), 1)[3:25, 2:20]
    np.testing.assert_array_equal(f.image(), want)
    # box: hflip (x → 40 - x) → (28, 5, 36, 9); rot90 (x, y) → (y, 40 - x) → (5, 4, 9, 12); window −(2, 3)
    assert [a.geometry for a in f.annotations] == [Box(3.0, 1.0, 7.0, 9.0)]
    assert f.ops == ["hflip", "rot90(1)", "window(2,3,20,25)"]


@pytest.mark.parametrize("edges, fill", [(Edges.BLACK, 0), (Edges.WHITE, 255)])
def test_resize_fit_letterbox(edges, fill):
    img = np.full((100, 200, 3), 90, np.uint8)
    img[20:60, 50:100] = 200
    f = _frame(img, [Box(50.0, 20.0, 100.0, 60.0)])
    ops.Resize(width=100, height=100, mode=ResizeMode.FIT, edges=edges)(f, RNG)
    out = f.image()
    assert out.shape == (100, 100, 3)
    assert [a.geometry for a in f.annotations] == [Box(25.0, 35.0, 50.0, 55.0)]  # scale 0.5, bars of 25 px
    assert (out[:25] == fill).all() and (out[75:] == fill).all()
    assert (out[36:54, 26:49] == 200).all() and (out[30:70, 60:] == 90).all()


def test_resize_fill_crops_centre_and_clips_objects():
    img = np.zeros((100, 200, 3), np.uint8)
    f = _frame(img, [Box(0.0, 0.0, 60.0, 100.0), Box(90.0, 10.0, 110.0, 30.0)])
    f.min_visibility = 0.5
    ops.Resize(width=100, height=100, mode=ResizeMode.FILL)(f, RNG)
    # scale 1.0 (cover 100×100 from 200×100), centre crop x ∈ [50, 150): first box keeps 10 of 60 px → dropped
    assert [a.geometry for a in f.annotations] == [Box(40.0, 10.0, 60.0, 30.0)]
    assert f.dropped == 1


def test_fused_render_matches_op_by_op():
    """Letterbox + crop-cut + rotation: one warp where allowed, a render in between where needed."""
    img = RNG.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img[::8, ::8], 8, 0), 8, 1))  # blocky: little interpolation noise
    chain = [ops.Resize(width=100, height=100, mode=ResizeMode.FILL), ops.Affine(rotate=20),
             ops.HFlip(p=1.0), ops.Zoom(percent=20)]
    fused, step = _frame(img), _frame(img)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for op in chain:
        op(fused, r1)
        op(step, r2)
        step.image()  # render after every op
    a, b = fused.image().astype(int), step.image().astype(int)
    assert a.shape == b.shape == (100, 100, 3)
    assert np.abs(a - b).mean() < 6  # two resamplings vs one; content and black corners agree


def _quadrant_boxes(frame):
    return sorted((a.label, a.geometry) for a in frame.annotations)


def test_mosaic_boxes_land_in_their_quadrant_scaled():
    main = Frame.from_array(np.full((100, 200, 3), 10, np.uint8), [Annotation("a", Box(20.0, 10.0, 60.0, 50.0))])
    p1 = Frame.from_array(np.full((100, 400, 3), 60, np.uint8),
                          [Annotation("b", Box(160.0, 20.0, 240.0, 80.0)), Annotation("cut", Box(0.0, 0.0, 40.0, 100.0)),
                           Annotation("half", Box(80.0, 0.0, 120.0, 100.0))])
    p2 = Frame.from_array(np.full((50, 100, 3), 120, np.uint8), [Annotation("c", Box(10.0, 10.0, 30.0, 40.0))])
    p3 = Frame.from_array(np.full((200, 200, 3), 200, np.uint8), [Annotation("d", Box(60.0, 60.0, 140.0, 120.0))])
    main.partners = [p1, p2, p3]
    ops.Mosaic(jitter=0)(main, RNG)
    out = main.image()
    assert out.shape == (100, 200, 3)  # the main frame's size; each cell 100 × 50
    # each image keeps its aspect ratio: scaled to cover its cell (k = max of the two ratios), centred, cropped
    assert _quadrant_boxes(main) == [
        ("a", Box(10.0, 5.0, 30.0, 25.0)),  # top-left: 200×100 → k 1/2, no crop
        ("b", Box(130.0, 10.0, 170.0, 40.0)),  # top-right: 400×100 → k 1/2 (200×50), 50 px cropped left and right
        ("c", Box(10.0, 60.0, 30.0, 90.0)),  # bottom-left: 100×50 → k 1
        ("d", Box(130.0, 55.0, 170.0, 85.0)),  # bottom-right: 200×200 → k 1/2 (100×100), 25 px cropped top, bottom
        ("half", Box(100.0, 0.0, 110.0, 50.0)),  # x 40..60 scaled, -50 → -10..10: clipped to its visible half
    ]  # "cut" (x 0..40 → 0..20, -50) lies wholly in the cropped part: gone
    assert (out[:50, :100] == 10).all() and (out[:50, 100:] == 60).all()
    assert (out[50:, :100] == 120).all() and (out[50:, 100:] == 200).all()


def test_colour_ops_fuse_and_keep_grey():
    img = np.full((10, 10, 3), 100, np.uint8)
    f = _frame(img)
    r = np.random.default_rng(1)
    for op in (ops.Hue(degrees=90), ops.Saturation(percent=50), ops.Brightness(percent=10), ops.Exposure(percent=10)):
        op(f, r)
    out = f.image()
    assert (out == out[0, 0, 0]).all()  # hue and saturation leave grey grey
    assert out[0, 0, 0] != 100 and "brightness" in f.ops[2]


def test_compose_moves_a_sample_and_its_rgb_pixels():
    img = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    sample = Sample(ImageRef("x.jpg", width=30, height=20), (Annotation("a", Box(1.0, 2.0, 5.0, 6.0)),))
    aug = ops.Compose([ops.HFlip(p=1.0), ops.Brightness(percent=0.001)], seed=0)
    s2, out = aug(sample, img)
    assert s2.annotations[0].geometry == Box(25.0, 2.0, 29.0, 6.0)
    assert (s2.image.width, s2.image.height) == (30, 20)
    np.testing.assert_array_equal(out, img[:, ::-1])


def test_cutout_does_not_touch_the_shared_source():
    img = np.full((20, 20, 3), 50, np.uint8)
    img.flags.writeable = False
    f = _frame(img)
    ops.Cutout(count=2, percent=25)(f, np.random.default_rng(0))
    assert (f.image() == 0).any() and (img == 50).all()
