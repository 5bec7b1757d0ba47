"""Generation on real raccoon photos: deterministic, resumable, reusing bytes, exported, diffed, previewed."""

import json
import zipfile

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from visionloop import formats
from visionloop.core import Box
from visionloop.store.schema import LineageRow, VersionItemRow
from visionloop.versions import (
    VersionDataset,
    create_version,
    diff_versions,
    export_version,
    list_versions,
    preview_version,
    show_version,
    version_samples,
)
from visionloop.versions.diff import recipe_changes
from visionloop.versions.pipeline import compose

from .conftest import SMALL, new_project

EVERYTHING = {
    "schema": 1,
    "seed": 11,
    "preprocess": {"resize": {"width": 320, "height": 240, "mode": "fit", "edges": "reflect"}},
    "augment": {
        "multiplier": 3,
        "mosaic": {"percent": 30, "jitter": 20},
        "flip": {"horizontal": True, "vertical": True},
        "rot90": {"clockwise": True, "counter_clockwise": True},
        "rotate": {"degrees": 12},
        "shear": {"horizontal": 5, "vertical": 5},
        "crop": {"percent": 20},
        "box": {"flip": {"horizontal": True}, "brightness": {"percent": 20}, "blur": {"pixels": 2}},
        "grayscale": {"percent": 20},
        "hue": {"degrees": 20},
        "saturation": {"percent": 20},
        "brightness": {"percent": 20},
        "exposure": {"percent": 10},
        "blur": {"pixels": 1.5},
        "motion_blur": {"pixels": 7},
        "camera_gain": {"percent": 10},
        "noise": {"percent": 2},
        "cutout": {"count": 2, "percent": 10},
    },
    "min_visibility": 0.3,
    "output": {"quality": 90},
}


def _items(store, name):
    info = show_version(store, name)
    with store.session() as s:
        rows = s.execute(select(VersionItemRow.split, VersionItemRow.file_name, VersionItemRow.sha256,
                                VersionItemRow.annotations, VersionItemRow.meta)
                         .where(VersionItemRow.version_id == info.id)
                         .order_by(VersionItemRow.position, VersionItemRow.out_index)).all()
    return [tuple(r) for r in rows]


@pytest.fixture(scope="module")
def two_runs(small_raccoon, tmp_path_factory):
    """The same recipe on the same source in two fresh projects: in-process and over 2 workers."""
    root = tmp_path_factory.mktemp("determinism")
    a = new_project(root / "a", small_raccoon)
    b = new_project(root / "b", small_raccoon)
    va = create_version(a, EVERYTHING, workers=0)
    vb = create_version(b, EVERYTHING, workers=2, batch=5)
    return a, va, b, vb


def test_same_recipe_same_source_gives_byte_identical_versions(two_runs):
    a, va, b, vb = two_runs
    ia, ib = _items(a, va.name), _items(b, vb.name)
    assert len(ia) == va.images
    assert ia == ib  # splits, names, output blob hashes, annotation JSON, applied ops
    assert va.content_digest == vb.content_digest
    for _, _, sha, _, _ in ia[:10]:
        assert a.blobs.get(sha) == b.blobs.get(sha)
    # the recipe really did things: augmented copies of training images, mosaics, mostly re-encoded
    metas = [json.loads(m) for *_, m in ia]
    assert any("mosaic" in m for m in metas)
    assert any(any(op.startswith("affine") for op in m["ops"]) for m in metas)
    train = va.counts["by_split"]["train"]["images"]
    assert train % 3 == 0 and va.images == train + va.counts["by_split"]["valid"]["images"] + \
        va.counts["by_split"].get("test", {}).get("images", 0)


def test_split_ratios_and_identical_files_share_a_split(two_runs):
    a, va, *_ = two_runs
    splits = {}
    for split, name, *_ in _items(a, va.name):
        stem = name.split("/")[-1].split("_")[0].removesuffix(".jpg")
        splits.setdefault(stem, set()).add(split)
    assert all(len(v) == 1 for v in splits.values())
    assert splits["raccoon-11"] == splits["raccoon-116"]  # byte-identical photos: no leak across splits
    n = {s: sum(1 for v in splits.values() if v == {s}) for s in ("train", "valid", "test")}
    assert sum(n.values()) == len(SMALL)
    # 23 distinct files (one pair is identical): 0.7 / 0.2 / 0.1 → 16 / 5 / 2 units, the pair in one of them
    assert (n["valid"], n["test"]) in ((5, 2), (6, 2), (5, 3))


def test_second_create_returns_the_finished_version(two_runs):
    a, va, *_ = two_runs
    again = create_version(a, EVERYTHING, workers=0)
    assert again.reused and again.name == va.name
    assert [v.name for v in list_versions(a)] == [va.name]


def test_interrupted_then_resumed_equals_uninterrupted(two_runs, small_raccoon, tmp_path):
    a, va, *_ = two_runs
    store = new_project(tmp_path / "c", small_raccoon)
    seen = []

    def stop_after_two_commits(n):
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_version(store, EVERYTHING, workers=2, batch=4, progress=stop_after_two_commits)
    partial = show_version(store, "v1")
    assert partial.status == "generating" and 0 < partial.done < partial.total
    with pytest.raises(Exception, match="not finished"):
        list(version_samples(store, "v1"))
    resumed = create_version(store, EVERYTHING, workers=0, batch=7)
    assert resumed.name == "v1" and resumed.status == "ready"
    assert _items(store, "v1") == _items(a, va.name)
    assert resumed.content_digest == va.content_digest


def test_no_pixel_op_reuses_the_source_bytes(small_raccoon, tmp_path):
    store = new_project(tmp_path / "p", small_raccoon)
    info = create_version(store, {"schema": 1, "preprocess": {"classes": {"rename": {"raccoon": "procyon"}}}},
                          workers=0)
    samples = list(version_samples(store, info.name))
    src = {s.image.file_name: s for s in store.samples()}
    assert len(samples) == len(SMALL) and info.counts["generation"]["reused"] == len(SMALL)
    for s in samples:
        original = src[s.image.file_name]
        assert s.image.sha256 == original.image.sha256  # the very same blob, not re-encoded
        assert [a.geometry for a in s.annotations] == [a.geometry for a in original.annotations]
        assert {a.label for a in s.annotations} == {"procyon"}
    assert info.classes[0]["name"] == "procyon" and info.counts["by_class"] == {"procyon": 25}  # 25 <object> elements in the 24 XML files


def test_lineage_records_batches_recipe_and_parent(two_runs):
    a, va, *_ = two_runs
    child = create_version(a, {**EVERYTHING, "seed": 12, "augment": None}, parent=va.name, name="plain", workers=0)
    assert child.name == "plain" and show_version(a, "plain").parent == va.name
    with a.session() as s:
        edges = {(r.parent_kind, r.parent_id) for r in s.scalars(
            select(LineageRow).where(LineageRow.child_kind == "version", LineageRow.child_id == str(child.id)))}
    assert edges == {("batch", "1"), ("recipe", child.recipe_hash), ("version", str(va.id))}
    assert child.source_batches == [1] and child.code_version


def test_diff_reports_images_annotations_and_recipe(two_runs):
    a, va, *_ = two_runs
    plain = show_version(a, "plain") if "plain" in [v.name for v in list_versions(a)] else \
        create_version(a, {**EVERYTHING, "seed": 12, "augment": None}, name="plain", workers=0)
    d = diff_versions(a, va.name, plain.name)
    js = d.to_json()
    aug_copies = sum(1 for _, name, *_ in _items(a, va.name) if "_aug-" in name)
    assert js["images"]["removed"] >= aug_copies > 0  # plain has no augmented copies
    assert js["images"]["added"] + js["images"]["removed"] + js["images"]["changed"] + \
        js["images"]["unchanged"] == len({n for _, n, *_ in _items(a, va.name)} | {n for _, n, *_ in _items(a, "plain")})
    assert js["annotations"]["a"] == va.counts["annotations"] and js["annotations"]["b"] == plain.counts["annotations"]
    assert {c["field"] for c in js["recipe"]} == {"seed", "augment"}  # augment: the whole section went
    nested = recipe_changes(va.recipe, {**va.recipe, "augment": {**va.recipe["augment"], "rotate": {"degrees": 5}}})
    assert nested == [{"field": "augment.rotate.degrees", "a": 12.0, "b": 5}]
    same = diff_versions(a, va.name, va.name).to_json()
    assert same["same_content"] and same["images"]["unchanged"] == va.images and not same["recipe"]


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_export_and_read_back_counts(two_runs, tmp_path, fmt):
    a, va, *_ = two_runs
    report = export_version(a, va.name, tmp_path / fmt, format=fmt)
    assert report.images == va.images and not report.dropped
    back = list(formats.read(tmp_path / fmt, format=fmt))
    assert len(back) == va.images
    assert sum(len(s.annotations) for s in back) == va.counts["annotations"]
    by_split = {}
    for s in back:
        split = {"val": "valid"}.get(s.split, s.split)  # Ultralytics calls it val
        by_split[split] = by_split.get(split, 0) + 1
    assert by_split == {k: v["images"] for k, v in va.counts["by_split"].items()}


def test_export_zip(two_runs, tmp_path):
    a, va, *_ = two_runs
    report = export_version(a, va.name, tmp_path / "out", format="coco", zip=True)
    assert report.path.endswith("out.zip")
    with zipfile.ZipFile(report.path) as zf:
        names = zf.namelist()
    assert sum(n.endswith(".jpg") for n in names) == va.images
    assert any(n.endswith("_annotations.coco.json") for n in names)


def test_preview_png(two_runs, tmp_path):
    a, va, *_ = two_runs
    p = preview_version(a, va.name, tmp_path / "grid.png", n=16, cell=128)
    img = cv2.imread(p.path)
    assert img.shape == (512, 512, 3) and (p.width, p.height) == (512, 512)
    assert len(p.images) == 16 and all("_aug-" in n for n in p.images)
    assert img.std() > 10


def test_version_dataset_reads_lazily(two_runs):
    a, va, *_ = two_runs
    ds = VersionDataset(a, va.name, "valid")
    assert len(ds) == va.counts["by_split"]["valid"]["images"]
    image, target = ds[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert target["boxes"].dtype == np.float32 and target["boxes"].shape[1] == 4
    assert target["labels"].dtype == np.int64 and (target["labels"] == 0).all()
    assert image.shape[:2] == (240, 320)
    b = target["boxes"]
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 320).all() and (b[:, 3] <= 240).all()
    import pickle

    clone = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives
    np.testing.assert_array_equal(clone[0][0], image)


def test_train_time_compose_from_recipe(two_runs):
    from visionloop.versions import load_recipe

    a, va, *_ = two_runs
    aug = compose(load_recipe(EVERYTHING), seed=3)
    ds = VersionDataset(a, va.name, "valid", transform=aug)
    image, target = ds[0]
    assert image.shape[2] == 3 and target["boxes"].shape[1] == 4
    assert len(aug.ops) > 10


def test_recipe_naming_an_unknown_class_is_refused(two_runs):
    from visionloop.versions import RecipeError

    a, *_ = two_runs
    with pytest.raises(RecipeError) as e:
        create_version(a, {"schema": 1, "preprocess": {"classes": {"drop": ["badger"]}}}, workers=0)
    assert "badger" in str(e.value) and "preprocess.classes.drop" in str(e.value)


def test_isolate_objects_gives_a_classification_version(small_raccoon, tmp_path):
    store = new_project(tmp_path / "p", small_raccoon)
    info = create_version(store, {"schema": 1, "preprocess": {"isolate_objects": True,
                                                             "resize": {"width": 64, "height": 64}}}, workers=0)
    samples = list(version_samples(store, info.name))
    assert len(samples) == 25  # one image per raccoon box (25 <object>s in the 24 XML files)
    assert all(s.image.size == (64, 64) and [a.label for a in s.annotations] == ["raccoon"] for s in samples)
    assert info.counts["by_kind"] == {"label": 25}
    one = next(s for s in samples if s.image.file_name == "images/raccoon-1_obj-0.jpg")
    assert one.annotations[0].box is None and not isinstance(one.annotations[0].geometry, Box)
