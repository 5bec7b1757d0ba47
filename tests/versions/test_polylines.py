"""Versions carry polylines: tiling cuts a line at the tiles' edges (each part in its tile, same class), a flip
mirrors it exactly, and isolating objects crops none out for a line (a line is not an object)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from visionloop.core import Annotation, Box, ImageRef, Label, Polyline, Sample
from visionloop.formats import write
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.versions import create_version, version_samples


def _store(tmp_path: Path) -> Store:
    Image.new("RGB", (60, 40), (30, 80, 20)).save(tmp_path / "a.png")
    sample = Sample(ImageRef("a.png", 60, 40, path=str(tmp_path / "a.png")), (
        Annotation("lane", Polyline((10, 20, 50, 20, 50, 30))), Annotation("car", Box(2, 2, 12, 10))), split="train")
    write([sample], tmp_path / "dm", format="datumaro")
    store = Store.init(tmp_path / "p")
    import_dataset(store, tmp_path / "dm")
    return store


def _anns(store: Store, name: str) -> dict[str, list[tuple[str, object]]]:
    return {s.image.file_name: [(a.label, a.geometry) for a in s.annotations] for s in version_samples(store, name)}


def test_tiles_cut_the_line_and_flips_mirror_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    tiles = create_version(store, {"schema": 1, "preprocess": {"tile": {"rows": 1, "cols": 2}}}, workers=0)
    assert _anns(store, tiles.name) == {
        "images/train/a_tile-0-0.jpg": [("lane", Polyline((10, 20, 30, 20))), ("car", Box(2, 2, 12, 10))],
        "images/train/a_tile-0-1.jpg": [("lane", Polyline((0, 20, 20, 20, 20, 30)))],
    }
    flipped = create_version(store, {"schema": 1, "augment": {"multiplier": 5, "flip": {"horizontal": True}}},
                             workers=0)
    got = _anns(store, flipped.name)
    assert [("lane", Polyline((50, 20, 10, 20, 10, 30))), ("car", Box(48, 2, 58, 10))] in got.values()
    isolated = create_version(store, {"schema": 1, "preprocess": {"isolate_objects": True}}, workers=0)
    assert list(_anns(store, isolated.name).values()) == [[("car", Label())]]
