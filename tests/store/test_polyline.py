"""Polylines in the store: import, the annotation row (kind, box, payload), read back exactly, idempotent re-import,
the version item codec, and the import checks (a line partly outside the image is cut at the edge, one leaving and
coming back becomes two, one wholly outside is quarantined naming it)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from sqlalchemy import select

from visionloop.core import Annotation, Box, ImageRef, Polyline, Sample
from visionloop.formats import write
from visionloop.ingest import import_dataset
from visionloop.store import Store, itemcodec
from visionloop.store.schema import AnnotationRow


def _dataset(tmp_path: Path, anns: dict[str, tuple[Annotation, ...]]) -> Path:
    samples = []
    for name, a in anns.items():
        Image.new("RGB", (60, 40), (len(name) * 30, 80, 20)).save(tmp_path / name)
        samples.append(Sample(ImageRef(name, 60, 40, path=str(tmp_path / name)), a, split="train"))
    write(samples, tmp_path / "dm", format="datumaro")
    return tmp_path / "dm"


def test_import_stores_and_reads_back_polylines(tmp_path: Path) -> None:
    line = Polyline((2, 3.5, 20, 10, 30.25, 4))
    src = _dataset(tmp_path, {"a.png": (Annotation("lane", line, attributes={"type": "dashed"}),
                                        Annotation("car", Box(5, 6, 15, 14)))})
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, src)
    assert report.counts["annotations_added"] == 2 and report.fixes == {}
    with store.session() as s:
        row = s.scalars(select(AnnotationRow).where(AnnotationRow.kind == "polyline")).one()
        assert (row.x0, row.y0, row.x1, row.y1, row.area) == (2, 3.5, 30.25, 10, 0.0)
        assert row.data == {"points": [2.0, 3.5, 20.0, 10.0, 30.25, 4.0]}
    (sample,) = list(store.samples())
    assert sample.annotations[0] == Annotation("lane", line, attributes={"type": "dashed"})
    again = import_dataset(store, src)
    assert again.batch_id is None and again.counts["images_unchanged"] == 1
    # a version item's JSON (itemcodec) keeps it too
    assert itemcodec.loads(itemcodec.dumps(sample.annotations)) == sample.annotations


def test_import_cuts_lines_at_the_image_edge(tmp_path: Path) -> None:
    src = _dataset(tmp_path, {
        "a.png": (Annotation("lane", Polyline((-10, 5, 10, 5, 10, 20))),  # enters from the left
                  Annotation("lane", Polyline((50, 10, 70, 10, 70, 30, 50, 30)), track_id=3)),  # out and back in
    })
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, src)
    assert report.fixes == {"out_of_bounds": 2, "clipped": 2, "polyline_split": 1}
    (sample,) = list(store.samples())
    assert [(a.geometry, a.track_id) for a in sample.annotations] == [
        (Polyline((0, 5, 10, 5, 10, 20)), None),
        (Polyline((50, 10, 60, 10)), 3),
        (Polyline((60, 30, 50, 30)), 3),
    ]


def test_a_line_wholly_outside_is_quarantined(tmp_path: Path) -> None:
    src = _dataset(tmp_path, {"a.png": (Annotation("lane", Polyline((70, 5, 90, 5))),),
                              "bb.png": (Annotation("lane", Polyline((1, 1, 5, 5))),)})
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, src)
    assert report.counts["images_added"] == 1
    (q,) = report.quarantined
    assert q["reason"] == "polyline (70, 5)–(90, 5) lies outside the 60×40 image"
    assert "annotation 1 (lane)" in q["element"]
