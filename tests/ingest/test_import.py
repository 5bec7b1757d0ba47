"""Import into the store: transactional, idempotent, de-duplicating, fixing only what is unambiguous."""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import Box, FormatError, ImageError, LabelState, ProjectError
from visionloop.demo import synthetic
from visionloop.formats import write
from visionloop.formats.images import probe
from visionloop.formats.orient import reorient
from visionloop.ingest import import_dataset
from visionloop.store import Store


def _jpeg(w, h, colour=(10, 200, 30), exif=None) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", (w, h), colour)
    if exif is not None:
        im.save(buf, format="JPEG", exif=exif)
    else:
        im.save(buf, format="JPEG")
    return buf.getvalue()


def _coco(folder: Path, images: list[tuple[str, int, int]], anns: list[tuple[int, list[float]]]) -> Path:
    doc = {
        "images": [{"id": i + 1, "file_name": n, "width": w, "height": h} for i, (n, w, h) in enumerate(images)],
        "annotations": [{"id": k + 1, "image_id": img, "category_id": 1, "bbox": bb, "iscrowd": 0}
                        for k, (img, bb) in enumerate(anns)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    p = folder / "ann.json"
    p.write_text(json.dumps(doc))
    return p


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project except SQLite's WAL side files, which change on any read; on another database
    (VISIONLOOP_TEST_DATABASE) every row of every table too."""
    from visionloop.store.schema import Base

    store = Store.open(root)
    out = {}
    with store.engine.connect() as c:
        if c.dialect.name == "sqlite":
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            for name, table in Base.metadata.tables.items():
                out[f"table {name}"] = repr(sorted(map(repr, c.execute(table.select())))).encode()
    store.close()
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(("-wal", "-shm")):
                continue
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.fixture
def shapes(tmp_path) -> Path:
    out = tmp_path / "shapes"
    write(synthetic.shapes(12, folder=tmp_path / "render"), out, format="coco", classes=synthetic.classes())
    return out


def test_import_is_idempotent_and_deduplicates(tmp_path, shapes):
    store = Store.init(tmp_path / "p")
    first = import_dataset(store, shapes)
    assert first.format == "coco"
    assert first.counts["images_added"] == 12 and first.counts["blobs_added"] == 12
    n_anns = first.counts["annotations_added"]
    before = store.stats()
    again = import_dataset(store, shapes)
    assert again.batch_id is None
    assert again.counts.get("images_added", 0) == 0 and again.counts["images_unchanged"] == 12
    after = store.stats()
    assert (after.images, after.annotations, after.batches) == (before.images, n_anns, 1)
    assert store.classes().names == ["square", "triangle", "disc"]


def test_same_bytes_under_two_names_share_one_blob(tmp_path):
    data = _jpeg(16, 12)
    (tmp_path / "a.jpg").write_bytes(data)
    (tmp_path / "b.jpg").write_bytes(data)
    ann = _coco(tmp_path, [("a.jpg", 16, 12), ("b.jpg", 16, 12)], [(1, [1, 1, 4, 4])])
    store = Store.init(tmp_path / "p")
    r = import_dataset(store, ann)
    assert r.counts["images_added"] == 2 and r.counts["blobs_added"] == 1
    assert store.stats().blobs == 1
    states = sorted(s.state for s in store.samples())
    assert states == [LabelState.ANNOTATED, LabelState.NULL]


def test_corrupt_image_rejects_import_and_leaves_store_unchanged(tmp_path, shapes):
    store = Store.init(tmp_path / "p")
    import_dataset(store, shapes)
    store.close()
    before = _snapshot(tmp_path / "p")
    bad = tmp_path / "bad"
    (bad).mkdir()
    for i, name in enumerate(["ok1.jpg", "ok2.jpg", "broken.jpg"]):
        (bad / name).write_bytes(_jpeg(20, 20, colour=(i * 40, 0, 0)))
    (bad / "broken.jpg").write_bytes((bad / "broken.jpg").read_bytes()[:300])  # truncated JPEG
    ann = _coco(bad, [("ok1.jpg", 20, 20), ("ok2.jpg", 20, 20), ("broken.jpg", 20, 20)], [(1, [1, 1, 5, 5])])
    with pytest.raises(ImageError) as e:
        import_dataset(Store.open(tmp_path / "p"), ann, strict=True)
    assert "broken.jpg" in str(e.value)
    assert _snapshot(tmp_path / "p") == before
    assert not any((tmp_path / "p" / "blobs" / ".staging").glob("*/*"))


def test_non_image_and_missing_image_are_named(tmp_path):
    (tmp_path / "x.jpg").write_text("this is not a picture")
    ann = _coco(tmp_path, [("x.jpg", 5, 5)], [])
    store = Store.init(tmp_path / "p")
    with pytest.raises(ImageError, match=r"x\.jpg: not a readable image"):
        import_dataset(store, ann, strict=True)
    ann = _coco(tmp_path, [("gone.jpg", 5, 5)], [])
    with pytest.raises(ImageError, match=r"gone\.jpg \(listed in .*ann\.json\): image file not found"):
        import_dataset(store, ann, strict=True)
    assert store.stats().images == 0


def test_declared_size_disagreement_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg(30, 20))
    ann = _coco(tmp_path, [("a.jpg", 31, 20)], [(1, [1, 1, 3, 3])])
    with pytest.raises(ImageError, match="declared size 31×20 disagrees with the image, which is 30×20"):
        import_dataset(Store.init(tmp_path / "p"), ann, strict=True)


def test_out_of_bounds_boxes_are_clipped_and_counted(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg(30, 20))
    ann = _coco(tmp_path, [("a.jpg", 30, 20)], [(1, [-2, 5, 10, 5]), (1, [25, 15, 10, 10]), (1, [3, 3, 0, 4]),
                                                 (1, [2, 2, 5, 5])])
    store = Store.init(tmp_path / "p")
    r = import_dataset(store, ann)
    assert r.fixes == {"out_of_bounds": 2, "clipped": 2, "zero_area": 1}
    (sample,) = store.samples()
    assert [a.geometry for a in sample.annotations] == [Box(0, 5, 8, 10), Box(25, 15, 30, 20), Box(2, 2, 7, 7)]
    # without fixing, problems are kept for the health check to show
    store2 = Store.init(tmp_path / "q")
    r2 = import_dataset(store2, ann, fix=False)
    assert r2.fixes == {"out_of_bounds": 2, "zero_area": 1}
    assert len(next(iter(store2.samples())).annotations) == 4


def test_box_entirely_outside_rejects(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg(30, 20))
    ann = _coco(tmp_path, [("a.jpg", 30, 20)], [(1, [40, 5, 10, 5])])
    with pytest.raises(FormatError, match=r"a\.jpg \(annotation 1 \(thing\)\): box .*lies outside the 30×20 image"):
        import_dataset(Store.init(tmp_path / "p"), ann, strict=True)


def test_exif_orientation_applied_once(tmp_path):
    """A 40×20 JPEG stored sideways (orientation 6) is 20×40 upright; boxes drawn on the raw grid move."""
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "r.jpg").write_bytes(_jpeg(40, 20, exif=exif))
    info = probe((tmp_path / "r.jpg").read_bytes(), path="r.jpg")
    assert (info.raw_width, info.raw_height, info.orientation, info.width, info.height) == (40, 20, 6, 20, 40)
    # declared with the raw size: the box was drawn on the raw pixels → rotate it 90° clockwise
    ann = _coco(tmp_path, [("r.jpg", 40, 20)], [(1, [0, 0, 10, 5])])
    store = Store.init(tmp_path / "p")
    r = import_dataset(store, ann)
    assert r.fixes == {"exif_reoriented": 1}
    (s,) = store.samples()
    assert (s.image.width, s.image.height, s.image.orientation) == (20, 40, 6)
    assert s.annotations[0].geometry == Box(15, 0, 20, 10)
    # the upright pixels agree: the box covers what PIL's exif_transpose shows there
    from PIL import ImageOps
    raw = np.zeros((20, 40), np.uint8)
    raw[0:5, 0:10] = 255
    im = Image.fromarray(raw)
    im.getexif()[0x0112] = 6
    up = np.asarray(ImageOps.exif_transpose(im))  # PIL as the independent oracle
    ys, xs = np.nonzero(up)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (15, 0, 20, 10)
    assert reorient(Box(0, 0, 10, 5), 8, 40, 20) == Box(0, 30, 5, 40)


def test_gps_from_exif_on_real_street_photos(tmp_path, lund):
    import shutil

    from visionloop.formats.images import read_bytes
    src = lund / "images" / "01.jpg"
    info = probe(read_bytes(str(src)), path=src)
    assert info.gps is not None
    assert info.gps.latitude == pytest.approx(55 + 41 / 60 + 53.4 / 3600)
    assert info.gps.longitude == pytest.approx(13 + 11 / 60 + 43.4 / 3600)
    assert info.gps.altitude == pytest.approx(37.0)
    folder = tmp_path / "street"
    shutil.copytree(lund / "images", folder / "unlabelled")
    store = Store.init(tmp_path / "p")
    r = import_dataset(store, folder, format="folders")
    assert r.counts["images_added"] == 29
    assert all(s.image.gps is not None for s in store.samples())


def test_open_rejects_non_project(tmp_path):
    with pytest.raises(ProjectError, match="not a visionloop project"):
        Store.open(tmp_path)
    Store.init(tmp_path / "p").close()
    with pytest.raises(ProjectError, match="already exists"):
        Store.init(tmp_path / "p")


def test_same_file_in_two_splits_is_two_images_and_a_repeat_is_skipped(tmp_path):
    """Roboflow layout: train/a.jpg and valid/a.jpg with the same bytes (a leak) are two images over one blob."""
    data = _jpeg(16, 12)
    for split in ("train", "valid"):
        (tmp_path / "rf" / split).mkdir(parents=True)
        (tmp_path / "rf" / split / "a.jpg").write_bytes(data)
        doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 16, "height": 12}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
               "categories": [{"id": 1, "name": "thing"}]}
        if split == "valid":  # listed twice in the same file: kept once
            doc["images"].append({"id": 2, "file_name": "a.jpg", "width": 16, "height": 12})
        (tmp_path / "rf" / split / "_annotations.coco.json").write_text(json.dumps(doc))
    store = Store.init(tmp_path / "p")
    r = import_dataset(store, tmp_path / "rf")
    assert r.counts["images_added"] == 2 and r.counts["blobs_added"] == 1
    assert r.counts["duplicate_entries_skipped"] == 1
    assert sorted(s.split for s in store.samples()) == ["train", "valid"]
    again = import_dataset(store, tmp_path / "rf")
    assert again.batch_id is None and again.counts["images_unchanged"] == 2
    assert again.counts["duplicate_entries_skipped"] == 1


def test_digest_ignores_int_versus_float():
    from visionloop.core import Annotation
    from visionloop.store.codec import annotations_digest
    a = annotations_digest((Annotation("x", Box(1, 2, 3, 4)),), "annotated")
    b = annotations_digest((Annotation("x", Box(1.0, 2.0, 3.0, 4.0)),), "annotated")
    assert a == b
