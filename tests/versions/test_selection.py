"""The selection in compact columns: the same images, order, splits, names and digest as the previous code
(tests/versions/reference.py), with tags, empty images, unlabelled images and identical files."""

import numpy as np
import pytest
from sqlalchemy import text

from visionloop.versions.recipe import load_recipe
from visionloop.versions.selection import _Columns, _compact, assign_splits, select_images

from . import reference
from .conftest import new_project


def _recipe(mode: str, stratify: bool, seed: int = 7):
    return load_recipe({"schema": 1, "seed": seed, "split": {"mode": mode, "stratify": stratify,
                                                             "ratios": {"train": 0.6, "valid": 0.3, "test": 0.1}}})


@pytest.mark.parametrize("mode", ["random", "keep", "rebalance"])
@pytest.mark.parametrize("stratify", [True, False])
@pytest.mark.parametrize("classes", [3, 400])  # 400: more class groups than the per-group passes take
def test_assign_splits_matches_the_previous_code(mode, stratify, classes):
    rng = np.random.default_rng(classes)
    n = 5000
    sha = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    sha[rng.integers(0, n, 600)] = sha[rng.integers(0, n, 600)]  # identical files, some in several places
    rarest = rng.integers(-1, classes, n).astype(np.int32)
    source = rng.integers(-1, 3, n).astype(np.int8)
    for seed in (1, 2):
        recipe = _recipe(mode, stratify, seed)
        got = assign_splits(recipe, sha, rarest, source)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, reference.assign_splits(recipe, sha, rarest, source))


def test_assign_splits_small_and_empty():
    recipe = _recipe("random", True)
    assert len(assign_splits(recipe, np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int8))) == 0
    one = (np.array([5], np.uint64), np.array([0], np.int32), np.array([-1], np.int8))
    np.testing.assert_array_equal(assign_splits(recipe, *one), reference.assign_splits(recipe, *one))


def test_columns_grow_past_a_low_count_and_compact_in_place():
    cols = _Columns(3)
    for k in range(4):
        cols.extend(([k * 10 + i for i in range(5)], [i for i in range(5)], [1] * 5, [2] * 5, [-1] * 5))
    ids, sha, src, stems, rank = cols.arrays()
    assert ids.dtype == np.int32 and sha.dtype == np.uint64 and rank.dtype == np.int32
    assert ids.tolist() == [k * 10 + i for k in range(4) for i in range(5)]
    a = np.arange(200_000, dtype=np.int64)
    keep = (a % 3) == 0
    np.testing.assert_array_equal(_compact(a.copy(), keep, chunk=1000), a[keep])


@pytest.fixture(scope="module")
def mixed_project(small_raccoon, tmp_path_factory):
    """The small raccoon set with tags, images left empty, unlabelled images, and a second class."""
    store = new_project(tmp_path_factory.mktemp("mixed") / "p", small_raccoon)
    with store.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM image ORDER BY id"))]

        def where(some):
            return f"WHERE id IN ({', '.join(str(i) for i in some)})"

        conn.execute(text(f"UPDATE image SET tags = '[\"blurry\"]' {where(ids[0:6])}"))
        conn.execute(text(f"UPDATE image SET tags = '[\"night\", \"blurry\"]' {where(ids[6:8])}"))
        conn.execute(text(f"UPDATE image SET tags = 'null' {where(ids[8:9])}"))
        conn.execute(text(f"UPDATE image SET state = 'missing' {where(ids[9:11])}"))
        conn.execute(text(f"DELETE FROM annotation WHERE image_id IN ({', '.join(str(i) for i in ids[11:17])})"))
        conn.execute(text(f"UPDATE image SET state = 'null' {where(ids[11:17])}"))  # empty images
        conn.execute(text("INSERT INTO class (name, external_id, position, keypoints, skeleton) "
                          "VALUES ('badger', 2, 1, '[]', '[]')"))
        badger = conn.execute(text("SELECT id FROM class WHERE name = 'badger'")).scalar()
        conn.execute(text(f"UPDATE annotation SET class_id = {badger} "
                          f"WHERE image_id IN ({', '.join(str(i) for i in ids[17:19])})"))
    return store


@pytest.mark.parametrize("recipe", [
    {},
    {"preprocess": {"filter_tags": {"include": ["blurry"]}}},
    {"preprocess": {"filter_tags": {"exclude": ["night"]}, "filter_null": {"max_percent": 10}}},
    {"preprocess": {"filter_null": {"max_percent": 0}, "classes": {"drop": ["badger"]}}},
    {"preprocess": {"classes": {"rename": {"badger": "raccoon"}}}, "split": {"mode": "rebalance"}},
    {"split": {"mode": "keep", "stratify": False}},
])
def test_select_images_matches_the_previous_code(mixed_project, recipe):
    recipe = load_recipe({"schema": 1, "seed": 3, **recipe})
    got, want = select_images(mixed_project, recipe), reference.select_images(mixed_project, recipe)
    np.testing.assert_array_equal(got.ids, want["ids"])
    np.testing.assert_array_equal(got.splits, want["splits"])
    assert got.digest == want["digest"] and got.batches == want["batches"] and got.counts == want["counts"]
    assert {int(v) for v in got.duplicate_stems} == want["duplicate_stems"]
    assert got.counts["selected"] > 0


def test_duplicate_stems_are_found(tmp_path):
    from .test_names import _split_folder

    a = np.full((32, 48, 3), 90, np.uint8)
    b = np.full((32, 48, 3), 160, np.uint8)
    _split_folder(tmp_path / "data", "train", [("a.jpg", a), ("a.png", b), ("c.jpg", b), ("d.jpg", a)])
    _split_folder(tmp_path / "data", "valid", [("c.jpg", b)])
    store = new_project(tmp_path / "p", tmp_path / "data")
    recipe = load_recipe({"schema": 1})
    got = select_images(store, recipe)
    assert {int(v) for v in got.duplicate_stems} == reference.select_images(store, recipe)["duplicate_stems"]
    assert len(got.duplicate_stems) == 2  # a (a.jpg + a.png) and c (in two splits)


def test_ids_past_int32_widen_the_column():
    cols = _Columns(4)
    cols.extend(([1, 2], [0, 0], [0, 0], [0, 0], [0, 0]))
    assert cols.columns[0].dtype == np.int32
    cols.extend(([2**31 + 5, 3], [0, 0], [0, 0], [0, 0], [0, 0]))
    ids = cols.arrays()[0]
    assert ids.dtype == np.int64 and ids.tolist() == [1, 2, 2**31 + 5, 3]
