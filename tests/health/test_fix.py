"""`fix` repairs what the report calls fixable, as one batch; `undo` restores the store exactly."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from visionloop.core import ImageError, ProjectError
from visionloop.health import check, fix, undo
from visionloop.ingest import import_dataset
from visionloop.store import Store, codec
from visionloop.store.schema import BatchRow, ChangeRow, ImageRow

from .conftest import DUPLICATED, OUT_OF_BOUNDS


def _state(store: Store):
    return list(store.samples()), store.classes().names, store.stats().to_json()


def test_dry_run_changes_nothing_and_lists_the_diff(defective, defective_copy):
    with Store.open(defective_copy) as store:
        before = _state(store)
        plan = fix(store, dry_run=True)
        assert plan.batch_id is None and plan.dry_run
        assert _state(store) == before
    assert plan.counts == {
        "annotations_clipped": 5,
        "annotations_deleted_zero_area": 2,
        "annotations_deleted_duplicate": 3,
        "annotations_reclassed": defective.variant_annotations,
        "images_deleted": 2,
        "annotations_deleted_with_images": 3,  # raccoon-30 has one box, raccoon-31 two
        "images_updated": 5 + 2 + 3 + 4,
        "classes_merged": 1,
    }
    whats = [c.what for c in plan.changes]
    assert sum(w.startswith("clip ") for w in whats) == 5
    assert "merge class 'Raccoon ' into 'raccoon'" in whats
    dropped = sorted(c.image for c in plan.changes if c.table == "image" and c.op == "delete")
    assert dropped == ["dup-raccoon-30.jpg", "raccoon-31.png"]  # the validation copies go, train keeps its own


def test_fix_repairs_then_report_is_clean_then_undo_restores_exactly(defective, defective_copy):
    with Store.open(defective_copy) as store:
        before = _state(store)
        first = check(store)
        result = fix(store)
        assert result.batch_id is not None and not result.dry_run
        second = check(store)
        # every fixable finding is gone
        for name in ("out_of_bounds", "zero_area", "duplicate_annotations", "class_name_variants"):
            assert first.count(name) > 0 and second.count(name) == 0, name
        assert first.duplicates["droppable"] == 2 and second.duplicates["droppable"] == 0
        assert not any(f.fixable for f in second.findings)
        # what needs a human is still reported
        assert second.count("conflicting_duplicates") == 4
        assert second.count("size_mismatch") == 1
        assert second.duplicates["near"]["pairs"] == first.duplicates["near"]["pairs"] == 16
        assert second.count("split_leakage") == 11  # the near copies; the two exact copies left validation
        s = store.stats()
        assert (s.images, s.classes) == (210, 1)
        assert s.by_class == {"raccoon": 222 + defective.valid_annotations - 2 - 3 - 3}
        samples = {x.image.file_name: x for x in store.samples()}
        for k in OUT_OF_BOUNDS:
            x = samples[f"raccoon-{k}.jpg"]
            assert max(a.geometry.x1 for a in x.annotations) == x.image.width
        was = {x.image.file_name: x for x in before[0]}
        for k in DUPLICATED:
            name = f"raccoon-{k}.jpg"
            assert len(samples[name].annotations) == len(was[name].annotations) - 1
            assert samples[name].annotations == was[name].annotations[:-1]  # the repeat was the last one
        # the images whose annotations changed get the digest of what the store holds now
        updated = {c.image for c in result.changes if c.table == "image" and c.op == "update"}
        assert len(updated) == 14
        for x in (samples[n] for n in updated):
            with store.session() as ses:
                digest = ses.scalar(select(ImageRow.ann_digest).where(ImageRow.file_name == x.image.file_name,
                                                                       ImageRow.sha256 == x.image.sha256))
            assert digest == codec.annotations_digest(x.annotations, x.state.value), x.image.file_name
        with store.session() as ses:
            batch = ses.get(BatchRow, result.batch_id)
            assert batch.kind == "fix" and batch.summary == result.counts
            n_changes = len(ses.scalars(select(ChangeRow).where(ChangeRow.batch_id == result.batch_id)).all())
        assert n_changes == len(result.changes)
        # nothing left to fix: no new batch
        again = fix(store)
        assert again.batch_id is None and again.changes == []

        back = undo(store, result.batch_id)
        assert back.undone and back.counts == {"rows_restored": n_changes}
        after = _state(store)
        assert after[0] == before[0] and after[1] == before[1]  # every sample and class, in order
        # the fix batch stays on record (marked undone), so the history shows what happened
        assert after[2] == {**before[2], "batches": before[2]["batches"] + 1}
        with store.session() as ses:
            assert "undone_at" in ses.get(BatchRow, result.batch_id).summary
        assert check(store).to_json()["findings"] == first.to_json()["findings"]
        with pytest.raises(ProjectError, match="already undone"):
            undo(store, result.batch_id)
        with pytest.raises(ProjectError, match="is an import, not a fix"):
            undo(store, 1)


def test_undo_refuses_when_a_later_change_touched_the_rows(defective_copy):
    with Store.open(defective_copy) as store:
        result = fix(store)
        clipped = next(c for c in result.changes if c.what.startswith("clip "))
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE annotation SET x0 = x0 + 1 WHERE id = ?", (clipped.row_id,))
        with pytest.raises(ProjectError, match=f"annotation row {clipped.row_id} changed after fix batch"):
            undo(store, result.batch_id)


def test_reimport_after_fix(defective, defective_copy):
    """Re-importing the original files is a relabel of the fixed images: the defects come back."""
    with Store.open(defective_copy) as store:
        fix(store)
        r = import_dataset(store, defective.root, fix=False)
        assert r.counts["images_updated"] == 5 + 2 + 3 + 4  # the images whose annotations fix changed
        assert r.counts["images_added"] == 2  # the duplicate copies fix dropped
        assert check(store).count("out_of_bounds") == 5


def test_import_keeps_a_wrong_declared_size_only_without_fixing(defective):
    """With fix=True the importer refuses (strict) or quarantines (default) a size mismatch; with fix=False it
    records it."""
    with Store.open(defective.project) as store:
        (x,) = [s for s in store.samples(split="train") if s.image.file_name == "raccoon-80.jpg"]
        assert x.image.metadata["declared_size"] == [x.image.width + 40, x.image.height]
    with pytest.raises(ImageError, match=r"raccoon-80\.jpg.*declared size 265×225 disagrees"):
        import_dataset(Store.init(defective.root.parent / "strict"), defective.root, strict=True)
    report = import_dataset(Store.init(defective.root.parent / "default"), defective.root)
    assert [(r["file"], r["reason"]) for r in report.quarantined] == [
        ("train/raccoon-80.jpg", "declared size 265×225 disagrees with the image, which is 225×225")]


def _coco_copies(folder, raccoon, names: list[str]) -> None:
    """The same raccoon-107 photo under each name, with the same box, in one COCO file."""
    import json
    import shutil

    folder.mkdir(parents=True)
    doc: dict[str, list] = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "raccoon"}]}
    for i, name in enumerate(names, 1):
        shutil.copyfile(raccoon / "images" / "raccoon-107.jpg", folder / name)
        doc["images"].append({"id": i, "file_name": name, "width": 500, "height": 622})
        doc["annotations"].append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 12, 100, 90],
                                   "iscrowd": 0})
    (folder / "annotations.json").write_text(json.dumps(doc))


def _image_deletes(plan):
    return [(c.image, c.what) for c in plan.changes if c.table == "image" and c.op == "delete"]


def test_fix_of_exact_duplicates_keeps_the_shorter_name_in_one_import(raccoon, tmp_path):
    """dup-raccoon-107.jpg comes first (lower row id) but raccoon-107.jpg is kept: the shorter name."""
    _coco_copies(tmp_path / "d", raccoon, ["dup-raccoon-107.jpg", "raccoon-107.jpg"])
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, tmp_path / "d" / "annotations.json", format="coco")
        plan = fix(store, dry_run=True)
    assert _image_deletes(plan) == [(
        "dup-raccoon-107.jpg", "delete duplicate image (unassigned) of raccoon-107.jpg (unassigned); "
        "raccoon-107.jpg is kept: same import, and its name is the shorter")]


def test_fix_of_exact_duplicates_keeps_the_earliest_import(raccoon, tmp_path):
    _coco_copies(tmp_path / "first", raccoon, ["raccoon-107-original-upload.jpg"])
    _coco_copies(tmp_path / "second", raccoon, ["r107.jpg"])
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, tmp_path / "first" / "annotations.json", format="coco")
        import_dataset(store, tmp_path / "second" / "annotations.json", format="coco")
        plan = fix(store, dry_run=True)
        result = fix(store)
        assert [s.image.file_name for s in store.samples()] == ["raccoon-107-original-upload.jpg"]
    assert _image_deletes(plan) == [(
        "r107.jpg", "delete duplicate image (unassigned) of raccoon-107-original-upload.jpg (unassigned); "
        "raccoon-107-original-upload.jpg is kept: it was imported first (batch 1, the copy in batch 2)")]
    assert result.counts["images_deleted"] == 1
