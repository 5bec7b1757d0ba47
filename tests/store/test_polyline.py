"""Polylines in the store: import, the annotation row (kind, box, payload), read back exactly, idempotent re-import,
the version item codec, and the import checks (a line partly outside the image is cut at the edge, one leaving and
coming back becomes two, one wholly outside is quarantined naming it)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from sqlalchemy import select, update

from visionloop.core import Annotation, Box, ImageRef, Keypoints, Polyline, Sample
from visionloop.formats import write
from visionloop.ingest import import_dataset
from visionloop.store import Store, itemcodec
from visionloop.store.schema import AnnotationRow, ImageRow


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


def test_migration_0014_turns_the_keypoints_lines_of_earlier_readers_into_polylines(tmp_path: Path) -> None:
    """A project as the code before the Polyline geometry (ac8ad67^) left it: each open line a Keypoints annotation,
    every point v=2, with its reader's marker attribute set after the source's own (formats/supervisely.py:
    ``Keypoints(tuple(v for x, y in pts for v in (x, y, 2.0)))`` then ``attributes["sly_shape"] = "line"``; VIA
    ``via_shape: "polyline"`` the same way), and the image's digest over those. Made here from an import of
    today by writing those rows back and stamping 0013; the upgrade gives back exactly what the import made."""
    from alembic import command

    from visionloop.store import codec
    from visionloop.store.project import _alembic_config

    lane, kerb = Polyline((2, 3.5, 20, 10, 30.25, 4)), Polyline((1, 1, 50, 30))
    src = _dataset(tmp_path, {
        "a.png": (Annotation("lane", lane, attributes={"type": "dashed"}), Annotation("car", Box(5, 6, 15, 14))),
        "b.png": (Annotation("kerb", kerb),
                  # not lines: CVAT's <points> (its marker names another shape), one marked point, a hidden point
                  Annotation("pts", Keypoints((4, 4, 2, 9, 9, 2)), attributes={"cvat_shape": "points"}),
                  Annotation("pts", Keypoints((7, 7, 2)), attributes={"via_shape": "polyline"}),
                  Annotation("pts", Keypoints((3, 3, 2, 0, 0, 0)), attributes={"vott_shape": "polyline"}))})
    store = Store.init(tmp_path / "p")
    import_dataset(store, src)
    with store.session() as s:
        want_rows = {r.id: (r.kind, r.x0, r.y0, r.x1, r.y1, r.area, r.data, r.attributes)
                     for r in s.scalars(select(AnnotationRow))}
        want_digests = {r.file_name: r.ann_digest for r in s.scalars(select(ImageRow))}
    want_samples = list(store.samples())
    markers = iter(({"sly_shape": "line"}, {"via_shape": "polyline", "cvat_shape": "polyline"}))
    with store.engine.begin() as conn:  # the rows as the earlier readers wrote them
        for r in conn.execute(select(AnnotationRow.__table__).where(AnnotationRow.kind == "polyline")
                              .order_by(AnnotationRow.id)).all():
            xy = r.data["points"]
            conn.execute(update(AnnotationRow.__table__).where(AnnotationRow.id == r.id).values(
                kind="keypoints", data={"points": [v for p in zip(xy[0::2], xy[1::2], strict=True) for v in (*p, 2.0)]},
                attributes={**r.attributes, **next(markers)}))
        command.stamp(_alembic_config(conn), "0013")
    old_samples = list(store.samples())
    with store.engine.begin() as conn:
        for s in old_samples:
            conn.execute(update(ImageRow.__table__).where(ImageRow.file_name == s.image.file_name).values(
                ann_digest=codec.annotations_digest(s.annotations, s.state.value)))
    assert [type(a.geometry).__name__ for s in old_samples for a in s.annotations] == [
        "Keypoints", "Box", "Keypoints", "Keypoints", "Keypoints", "Keypoints"]
    with store.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    with store.session() as s:
        assert {r.id: (r.kind, r.x0, r.y0, r.x1, r.y1, r.area, r.data, r.attributes)
                for r in s.scalars(select(AnnotationRow))} == want_rows
        assert {r.file_name: r.ann_digest for r in s.scalars(select(ImageRow))} == want_digests
    back = list(store.samples())
    assert back == want_samples
    assert [a.geometry for s in back for a in s.annotations if isinstance(a.geometry, Polyline)] == [lane, kerb]
    assert import_dataset(store, src).batch_id is None  # nothing to change: the digests are the importer's
    store.close()
