"""Workers build their own jobs from the database: the same annotations and names the main process used to
send, the same versions whatever the number of workers, and rows stored alike on every insert path."""

import numpy as np
import pytest
from sqlalchemy import create_engine, select, text

from visionloop import formats
from visionloop.demo import synthetic
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.store.bulk import insert_blobs
from visionloop.store.schema import BlobRow, VersionItemRow
from visionloop.store.versions import ITEM_COLUMNS, insert_items
from visionloop.versions import create_version, version_samples
from visionloop.versions.generate import JobReader, Plan
from visionloop.versions.recipe import load_recipe
from visionloop.versions.selection import select_images

from . import reference
from .conftest import new_project
from .test_names import _split_folder


def _items(store, info):
    with store.session() as s:
        return [tuple(r) for r in s.execute(
            select(*[getattr(VersionItemRow, c) for c in ITEM_COLUMNS[1:]])
            .where(VersionItemRow.version_id == info.id)
            .order_by(VersionItemRow.position, VersionItemRow.out_index))]


@pytest.fixture(scope="module")
def shapes_store(tmp_path_factory):
    """Boxes, polygons and masks, some with attributes, confidence, tracks, crowd and a NaN the stdlib wrote."""
    root = tmp_path_factory.mktemp("shapes-jobs")
    formats.write(synthetic.shapes(12, seed=5, folder=root / "render"), root / "coco", format="coco",
                  classes=synthetic.classes())
    store = Store.init(root / "p")
    import_dataset(store, root / "coco")
    with store.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM annotation ORDER BY id"))]
        conn.execute(text(f"UPDATE annotation SET attributes = '{{\"occluded\": true, \"n\": 2}}', "
                          f"confidence = 0.25, track_id = 7, source = 'model' WHERE id = {ids[0]}"))
        conn.execute(text(f"UPDATE annotation SET crowd = 1, attributes = '{{\"x\": NaN}}' WHERE id = {ids[1]}"))
        conn.execute(text(f"UPDATE annotation SET attributes = 'null', data = 'null' WHERE id = {ids[2]}"
                          " AND kind = 'box'"))
    return store


@pytest.mark.parametrize("changes", [{}, {"drop": ["square"], "rename": {"disc": "round"}}])
def test_job_reader_gives_the_annotations_the_main_process_sent(shapes_store, changes):
    recipe = load_recipe({"schema": 1, "preprocess": {"classes": changes}})
    sel = select_images(shapes_store, recipe)
    plan = Plan(version_id=0, ids=sel.ids, splits=sel.splits, label_of=sel.label_of,
                duplicate_stems=sel.duplicate_stems, keypoint_names=sel.keypoint_names)
    jobs = JobReader(shapes_store.engine, recipe, plan).jobs(0, len(sel))
    assert [j.position for j in jobs] == list(range(len(sel)))
    kinds, optional = set(), set()
    for job in jobs:
        got = job.source.annotations
        assert got == reference.source_annotations(shapes_store, sel.label_of, job.source.image_id)
        kinds |= {type(a.geometry).__name__ for a in got}
        optional |= {k for a in got for k in ("attributes", "confidence", "track_id", "crowd") if getattr(a, k)}
    assert kinds == ({"Polygon", "Mask"} if changes else {"Box", "Polygon", "Mask"})
    if not changes:  # the edited rows are all there
        assert optional == {"attributes", "confidence", "track_id", "crowd"}


def test_workers_give_the_in_process_version_with_colliding_names(tmp_path):
    a = np.full((32, 48, 3), 90, np.uint8)
    b = np.full((32, 48, 3), 160, np.uint8)
    files = [(f"img{i}.jpg", np.full((32, 48, 3), 10 * i, np.uint8)) for i in range(10)]
    _split_folder(tmp_path / "data", "train", [("a.jpg", a), ("a.png", b), ("c.jpg", b), *files])
    _split_folder(tmp_path / "data", "valid", [("c.jpg", b)])
    recipe = {"schema": 1, "seed": 4, "preprocess": {"resize": {"width": 24, "height": 16}},
              "augment": {"multiplier": 2, "flip": {"horizontal": True}, "mosaic": {"percent": 60}}}
    one = new_project(tmp_path / "one", tmp_path / "data")
    two = new_project(tmp_path / "two", tmp_path / "data")
    v1 = create_version(one, recipe, workers=0)
    v2 = create_version(two, recipe, workers=2, batch=3)  # ranges of one position, several in flight
    assert _items(one, v1) == _items(two, v2)
    assert v1.content_digest == v2.content_digest and v1.counts["generation"] == v2.counts["generation"]
    names = [s.image.file_name for s in version_samples(two, v2.name)]
    assert sum(n.startswith("a_") for n in names) == 2 * 2  # a.jpg and a.png, with their augmented copies


def test_insert_paths_store_the_same_rows(tmp_path):
    rows = [(1, p, 0, "train", f"{p}.jpg", "ab" * 32, 10, 20, 1, None if p % 2 else "jpeg", 3, 1, "[]", "{}")
            for p in range(5)]
    blobs = {"ab" * 32: (100, "jpeg"), "cd" * 32: (50, "png")}
    got = []
    for style in ("qmark", "named"):  # named: the Core path other databases take
        engine = create_engine(f"sqlite:///{tmp_path / style}.db", paramstyle=style)
        BlobRow.__table__.create(engine)
        VersionItemRow.__table__.create(engine)
        with engine.begin() as conn:
            insert_blobs(conn, {"cd" * 32: (50, "png")})
        with engine.begin() as conn:
            insert_items(conn, rows)
            insert_blobs(conn, blobs)  # one known already: left as it is
        with engine.connect() as conn:
            got.append((conn.execute(select(*[getattr(VersionItemRow, c) for c in ITEM_COLUMNS])
                                     .order_by(VersionItemRow.position)).all(),
                        conn.execute(select(BlobRow.sha256, BlobRow.size, BlobRow.media_format)
                                     .order_by(BlobRow.sha256)).all()))
        engine.dispose()
    for items, blob_rows in got:
        assert [tuple(r) for r in items] == rows
        assert [tuple(r) for r in blob_rows] == [("ab" * 32, 100, "jpeg"), ("cd" * 32, 50, "png")]


def test_an_in_memory_database_generates_in_this_process(small_raccoon, tmp_path):
    from visionloop.store.project import migrate

    store = Store(tmp_path, "sqlite://", str(tmp_path / "blobs"))  # no other process can open it
    migrate(store.engine)
    import_dataset(store, small_raccoon)
    info = create_version(store, {"schema": 1, "preprocess": {"resize": {"width": 32, "height": 32}}}, workers=2)
    assert info.status == "ready" and info.images == store.stats().images


def test_spawned_workers_get_the_plan_pickled(small_raccoon, tmp_path, monkeypatch):
    import multiprocessing

    from visionloop.runtime import pool

    recipe = {"schema": 1, "seed": 2, "preprocess": {"resize": {"width": 40, "height": 30}},
              "augment": {"multiplier": 2, "flip": {"horizontal": True}}}
    here = new_project(tmp_path / "a", small_raccoon)
    v0 = create_version(here, recipe, workers=0)
    monkeypatch.setattr(pool, "start_context", lambda: multiprocessing.get_context("spawn"))
    spawned = new_project(tmp_path / "b", small_raccoon)
    v2 = create_version(spawned, recipe, workers=2, batch=8)
    assert _items(here, v0) == _items(spawned, v2)
