"""Small builders for fixtures that datumaro's own exporters write (tests/formats/test_datumaro_exports.py,
test_tool_exports.py): `from vl_datumaro import dm_image, box_mask`."""

from __future__ import annotations

import numpy as np


def dm_image(h: int, w: int, value: int, channels: int = 3) -> object:
    """A datumaro Image of one grey value (h × w, or h × w × channels)."""
    import datumaro as dm

    shape = (h, w, channels) if channels > 1 else (h, w)
    return dm.Image.from_numpy(np.full(shape, value, np.uint8))


def box_mask(h: int, w: int, rows: slice, cols: slice) -> np.ndarray:
    """An h × w uint8 mask with ones in rows × cols."""
    a = np.zeros((h, w), np.uint8)
    a[rows, cols] = 1
    return a
