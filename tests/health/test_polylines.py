"""Health and fix on polylines: a line reaching outside its image is found and `fix` cuts it at the edge (a line
leaving and coming back becomes two annotations: one row updated, one inserted; `undo` puts back exactly); a
line's flat box is neither a zero-area box, a degenerate polygon nor a tiny object."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from visionloop.core import Annotation, Box, ImageRef, Polyline, Sample
from visionloop.formats import write
from visionloop.health import check, fix, undo
from visionloop.ingest import import_dataset
from visionloop.store import Store


def _store(tmp_path: Path) -> Store:
    Image.new("RGB", (60, 40), (30, 80, 20)).save(tmp_path / "a.png")
    sample = Sample(ImageRef("a.png", 60, 40, path=str(tmp_path / "a.png")), (
        Annotation("lane", Polyline((0, 20, 59, 20))),  # flat box, inside: nothing to find
        Annotation("lane", Polyline((50, 10, 70, 10, 70, 30, 50, 30)), attributes={"kind": "dashed"}),  # out and in
        Annotation("car", Box(5, 5, 25, 25)),
    ), split="train")
    write([sample], tmp_path / "dm", format="datumaro")
    store = Store.init(tmp_path / "p")
    import_dataset(store, tmp_path / "dm", fix=False)  # keep the line as drawn, for health to find
    return store


def test_fix_cuts_a_line_into_its_parts_inside_and_undo_restores(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = list(store.samples())
    report = check(store)
    assert report.count("out_of_bounds") == 1
    for name in ("zero_area", "degenerate_polygons", "tiny_objects", "outside_image"):
        assert report.count(name) == 0, name
    result = fix(store)
    assert result.counts == {"annotations_clipped": 1, "polylines_split": 1, "images_updated": 1}
    assert [c.op for c in result.changes if c.table == "annotation"] == ["update", "insert"]
    (sample,) = list(store.samples())
    assert [(a.label, a.geometry, dict(a.attributes)) for a in sample.annotations] == [
        ("lane", Polyline((0, 20, 59, 20)), {}),
        ("lane", Polyline((50, 10, 60, 10)), {"kind": "dashed"}),
        ("car", Box(5, 5, 25, 25), {}),
        ("lane", Polyline((60, 30, 50, 30)), {"kind": "dashed"}),
    ]
    assert check(store).count("out_of_bounds") == 0
    assert fix(store).batch_id is None
    undo(store, result.batch_id)
    assert list(store.samples()) == before
