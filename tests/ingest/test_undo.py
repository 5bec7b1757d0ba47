"""Undo of import batches (and fixes around them): exact, row ids included, refused while a later batch
changed the same rows (issue 11, item 3)."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core import ProjectError
from visionloop.health import fix
from visionloop.health import undo as undo_fix
from visionloop.ingest import import_dataset, list_batches, undo_batch
from visionloop.store import Store

TABLES = ("image", "annotation", "class")


def _dump(store: Store) -> dict[str, list[tuple]]:
    with store.engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY id'))] for t in TABLES}


@pytest.fixture()
def two_sets(voc_subset, tmp_path):
    first = voc_subset(tmp_path / "first", range(1, 11))
    # 5 new photos, 3 of the first ten relabelled (their box moved), one unchanged
    second = voc_subset(tmp_path / "second", [1, 2, 3, 4, 31, 32, 33, 34, 35], shift={1: 5, 2: 7, 3: 9})
    return first, second


def test_undo_import_restores_the_exact_rows(two_sets, tmp_path):
    first, second = two_sets
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, first)
        before = _dump(store)
        report = import_dataset(store, second)
        assert report.counts["images_added"] == 5 and report.counts["images_updated"] == 3
        assert _dump(store) != before
        undone = undo_batch(store, report.batch_id)
        assert undone.removed == {"images": 5, "annotations": report.counts["annotations_added"]}
        assert undone.restored == {"annotation_restored": 3, "image_restored": 3}
        assert _dump(store) == before
        assert [b.undone for b in list_batches(store)] == [False, True]
        with pytest.raises(ProjectError, match="already undone"):
            undo_batch(store, report.batch_id)
        # the same import again lands as it did the first time
        again = import_dataset(store, second)
        assert again.counts["images_added"] == 5 and again.counts["images_updated"] == 3


def test_undo_of_the_first_import_removes_its_classes(two_sets, tmp_path):
    first, _ = two_sets
    with Store.init(tmp_path / "p") as store:
        empty = _dump(store)
        report = import_dataset(store, first)
        undone = undo_batch(store, report.batch_id)
        assert undone.restored == {"class_deleted": 1}
        assert _dump(store) == empty


def test_a_later_import_blocks_undo_until_it_is_undone(two_sets, tmp_path):
    first, second = two_sets
    with Store.init(tmp_path / "p") as store:
        b1 = import_dataset(store, first).batch_id
        b2 = import_dataset(store, second).batch_id  # relabels three images that b1 added
        with pytest.raises(ProjectError, match=rf"import batch {b1} added were changed by a later batch.*"
                                               rf"undo the later batches first, newest first: {b2} \(import\)"):
            undo_batch(store, b1)
        undo_batch(store, b2)
        undo_batch(store, b1)
        assert all(v == [] for v in _dump(store).values())


def test_fix_then_an_import_of_other_images_then_undo_fix(voc_subset, two_sets, tmp_path):
    first, _ = two_sets
    bad = tmp_path / "bad"
    shutil.copytree(first, bad)
    xml = bad / "annotations" / "raccoon-5.xml"
    t = xml.read_text()
    a, b = t.index("<xmax>") + 6, t.index("</xmax>")
    xml.write_text(t[:a] + "9999" + t[b:])  # a box far outside its image: fix clips it
    other = voc_subset(tmp_path / "other", [50, 51, 52])
    with Store.init(tmp_path / "p") as store:
        import_dataset(store, bad, fix=False)
        state = _dump(store)
        f = fix(store)
        assert f.batch_id is not None
        import_dataset(store, other)  # touches none of the rows the fix changed
        undo_fix(store, f.batch_id)
        after = _dump(store)
        assert [r for r in after["image"] if r[0] <= len(state["image"])] == state["image"]
        # and re-importing the unfixed files (which replaces the fixed annotations) blocks the fix's undo until
        # that import is undone
        f2 = fix(store)
        b = import_dataset(store, bad, fix=False).batch_id
        with pytest.raises(ProjectError, match=f"changed after fix batch {f2.batch_id}"):
            undo_fix(store, f2.batch_id)
        undo_batch(store, b)
        undo_fix(store, f2.batch_id)


def test_cli_batch_list_show_and_undo(two_sets, tmp_path):
    first, second = two_sets
    root = tmp_path / "p"
    with Store.init(root) as store:
        import_dataset(store, first)
        b2 = import_dataset(store, second).batch_id
    r = CliRunner().invoke(app, ["batch", "list", "-p", str(root), "--json"])
    assert r.exit_code == 0, r.output
    assert [(b["id"], b["kind"], b["undone"]) for b in json.loads(r.output)] == [(1, "import", False),
                                                                                  (b2, "import", False)]
    r = CliRunner().invoke(app, ["undo", str(b2), "-p", str(root)])
    assert r.exit_code == 0, r.output
    assert r.output.split("\n")[0].startswith(f"Undid import batch {b2}: 5 images removed")
    r = CliRunner().invoke(app, ["batch", "show", str(b2), "-p", str(root), "--json"])
    assert json.loads(r.output)["undone"] is True
