"""Exact geometry: flips and quarter turns map boxes, polygons, masks, rotated boxes and keypoints exactly."""

import numpy as np
import pytest

from visionloop.core import Box, Keypoints, Label, Mask, Polygon, RotatedBox
from visionloop.transforms import affine as A
from visionloop.transforms import kernels

W, H = 40, 30


@pytest.fixture
def mask_array():
    rng = np.random.default_rng(3)
    m = np.zeros((H, W), dtype=np.uint8)
    m[5:12, 7:20] = 1
    m[20:28, 30:37] = 1
    m[rng.integers(0, H, 25), rng.integers(0, W, 25)] = 1  # scattered pixels: any off-by-one shows
    return m


def test_hflip_vflip_box_polygon_exact():
    b = Box(3.5, 4.0, 10.0, 20.25)
    assert kernels.hflip(b, width=W, height=H) == (Box(30.0, 4.0, 36.5, 20.25), 1.0)
    assert kernels.vflip(b, width=W, height=H) == (Box(3.5, 9.75, 10.0, 26.0), 1.0)
    p = Polygon(((1.0, 2.0, 11.0, 2.0, 6.0, 9.5),))
    g, vis = kernels.hflip(p, width=W, height=H)
    assert vis == 1.0 and g == Polygon(((39.0, 2.0, 29.0, 2.0, 34.0, 9.5),))
    g, _ = kernels.vflip(p, width=W, height=H)
    assert g == Polygon(((1.0, 28.0, 11.0, 28.0, 6.0, 20.5),))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_box_polygon_exact(k):
    b = Box(3.0, 4.0, 10.0, 20.0)
    g, vis = kernels.rot90(b, k=k, width=W, height=H)
    expected = {1: Box(4.0, 30.0, 20.0, 37.0),  # (x, y) → (y, W - x), as np.rot90 turns the array
                2: Box(30.0, 10.0, 37.0, 26.0),  # (x, y) → (W - x, H - y)
                3: Box(10.0, 3.0, 26.0, 10.0)}[k]  # (x, y) → (H - y, x)
    assert (g, vis) == (expected, 1.0)
    p = Polygon(((1.0, 2.0, 11.0, 2.0, 6.0, 9.0),))
    g, _ = kernels.rot90(p, k=k, width=W, height=H)
    f = {1: lambda x, y: (y, W - x), 2: lambda x, y: (W - x, H - y), 3: lambda x, y: (H - y, x)}[k]
    assert g == Polygon.from_points([f(x, y) for x, y in p.points()])


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_mask_equals_np_rot90(mask_array, k):
    g, vis = kernels.rot90(Mask.from_array(mask_array), k=k, width=W, height=H)
    assert vis == 1.0
    np.testing.assert_array_equal(g.to_array(), np.rot90(mask_array, k))


def test_flips_mask_equal_np_flip(mask_array):
    m = Mask.from_array(mask_array)
    np.testing.assert_array_equal(kernels.hflip(m, width=W, height=H)[0].to_array(), np.flip(mask_array, 1))
    np.testing.assert_array_equal(kernels.vflip(m, width=W, height=H)[0].to_array(), np.flip(mask_array, 0))


def test_mask_box_and_polygon_agree_under_rot90(mask_array):
    """A mask's bounds after the turn equal the turned bounds."""
    m = Mask.from_array(mask_array)
    for k in (1, 3):
        turned, _ = kernels.rot90(m, k=k, width=W, height=H)
        bounds, _ = kernels.rot90(m.bounds(), k=k, width=W, height=H)
        assert turned.bounds() == bounds


def test_keypoints_follow_and_unlabelled_stay_zero():
    kp = Keypoints((5.0, 6.0, 2, 0.0, 0.0, 0, 39.0, 1.0, 1))
    g, vis = kernels.hflip(kp, width=W, height=H)
    assert (g, vis) == (Keypoints((35.0, 6.0, 2, 0.0, 0.0, 0, 1.0, 1.0, 1)), 1.0)
    g, _ = kernels.affine(kp, matrix=A.translate(-10, 0), size=(W, H))  # first point leaves the canvas
    assert g == Keypoints((0.0, 0.0, 0, 0.0, 0.0, 0, 29.0, 1.0, 1))


def test_rotated_box_turns_exactly():
    rb = RotatedBox(10.0, 8.0, 6.0, 2.0, 30.0)
    g, vis = kernels.rot90(rb, k=1, width=W, height=H)
    assert vis == 1.0
    want = sorted((y, W - x) for x, y in rb.corners())
    got = sorted(g.corners())
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert (g.w, g.h) == pytest.approx((6.0, 2.0))


def test_label_passes_and_crop_clips_with_visibility():
    assert kernels.affine(Label(), matrix=A.hflip(W), size=(W, H)) == (Label(), 1.0)
    g, vis = kernels.affine(Box(0.0, 0.0, 20.0, 10.0), matrix=A.translate(-15, 0), size=(10, 10))
    assert g == Box(0.0, 0.0, 5.0, 10.0) and vis == pytest.approx(0.25)
    assert kernels.affine(Box(0.0, 0.0, 5.0, 5.0), matrix=A.translate(-15, 0), size=(10, 10)) == (None, 0.0)
    p = Polygon(((0.0, 0.0, 20.0, 0.0, 20.0, 10.0, 0.0, 10.0),))
    g, vis = kernels.affine(p, matrix=A.translate(-15, 0), size=(10, 10))
    assert g.bounds() == Box(0.0, 0.0, 5.0, 10.0) and vis == pytest.approx(0.25)


def test_rotated_axis_box_takes_bounds_of_corners():
    """The documented rule: an axis-aligned box turned by θ becomes the bounds of its 4 turned corners."""
    b = Box(10.0, 10.0, 20.0, 20.0)
    g, _ = kernels.affine(b, matrix=A.rotate(45, 15, 15), size=(W, H))
    half = 5 * np.sqrt(2)
    assert (g.x0, g.y0, g.x1, g.y1) == pytest.approx((15 - half, 15 - half, 15 + half, 15 + half))


def test_registry_refuses_duplicates_and_follows_mro():
    with pytest.raises(ValueError, match="already registered"):
        kernels.register_kernel("affine", Box)(lambda g, **kw: (g, 1.0))

    class MyBox(Box):
        pass

    assert kernels.kernel("affine", MyBox) is kernels.kernel("affine", Box)
    with pytest.raises(TypeError, match="does not handle"):
        kernels.kernel("affine", int)


def test_lattice_detection():
    assert A.is_lattice(A.hflip(W)) and A.is_lattice(A.rot90(1, W, H)) and A.is_lattice(A.translate(-3, 4))
    assert not A.is_lattice(A.translate(0.5, 0)) and not A.is_lattice(A.scale(2, 2))
    assert not A.is_lattice(A.rotate(10, 5, 5))
