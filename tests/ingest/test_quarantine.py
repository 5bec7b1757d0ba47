"""One bad file must not block a dataset (issue 11): default import quarantines, --strict refuses, --no-fix finds."""

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core import FormatError, ImageError, LabelState
from visionloop.ingest import import_dataset, show_batch
from visionloop.store import Store
from visionloop.store.quarantine import records, truncated_images

from .test_import import _snapshot

runner = CliRunner()


def _broken_raccoon(raccoon: Path, tmp_path: Path) -> Path:
    """raccoon with: raccoon-10.jpg cut in half (decodes), raccoon-50.jpg cut inside its header (does not),
    raccoon-20.jpg zero bytes, raccoon-30's box moved entirely outside, raccoon-40's class name removed."""
    src = tmp_path / "raccoon"
    shutil.copytree(raccoon / "annotations", src / "annotations")
    shutil.copytree(raccoon / "images", src / "images")
    img = src / "images"
    data = (img / "raccoon-10.jpg").read_bytes()
    (img / "raccoon-10.jpg").write_bytes(data[: len(data) // 2])
    (img / "raccoon-50.jpg").write_bytes((img / "raccoon-50.jpg").read_bytes()[:200])
    (img / "raccoon-20.jpg").write_bytes(b"")
    ann = src / "annotations"
    x = (ann / "raccoon-30.xml").read_text()
    x = re.sub(r"<xmin>\d+</xmin>", "<xmin>5000</xmin>", x, count=1)
    x = re.sub(r"<xmax>\d+</xmax>", "<xmax>5100</xmax>", x, count=1)
    (ann / "raccoon-30.xml").write_text(x)
    x = (ann / "raccoon-40.xml").read_text()
    (ann / "raccoon-40.xml").write_text(re.sub(r"<name>raccoon</name>", "<name></name>", x, count=1))
    return src


EXPECTED = [  # sorted by file
    {"file": "annotations/raccoon-40.xml", "element": "object 1 <name>", "reason": "object has no <name>"},
    {"file": "images/raccoon-20.jpg", "element": None, "reason": "empty file, not an image"},
    {"file": "images/raccoon-30.jpg", "element": "annotation 1 (raccoon)",
     "reason": "box (4999, 24)–(5100, 177) lies outside the 266×190 image"},
    {"file": "images/raccoon-50.jpg", "element": None,
     "reason": "truncated JPEG (the data ends before the end-of-image marker) and no decoder can read it"},
]


def _objects(raccoon: Path, *stems: str) -> int:
    return sum((raccoon / "annotations" / f"{s}.xml").read_text().count("<object>") for s in stems)


def test_default_import_lands_the_rest_and_quarantines_exactly_the_bad_ones(raccoon, tmp_path):
    src = _broken_raccoon(raccoon, tmp_path)
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, src)
    got = sorted(report.quarantined, key=lambda r: r["file"])
    assert got == EXPECTED
    lost = _objects(raccoon, "raccoon-20", "raccoon-30", "raccoon-40", "raccoon-50")
    s = store.stats()
    assert (s.images, s.annotations) == (196, 217 - lost)
    assert report.counts["images_added"] == 196 and report.notes == {"truncated_image": 1}
    names = {x.image.file_name for x in store.samples()}
    assert "images/raccoon-10.jpg" in names and not names & {f"images/raccoon-{n}.jpg" for n in (20, 30, 40, 50)}
    assert [n for _, n in truncated_images(store)] == ["images/raccoon-10.jpg"]
    info = show_batch(store, report.batch_id)
    assert sorted(info.summary["quarantined"], key=lambda r: r["file"]) == EXPECTED
    assert info.summary["images_quarantined"] == 4
    assert sorted((r.file, r.element, r.reason) for r in records(store)) == [
        (r["file"], r["element"], r["reason"]) for r in EXPECTED]


def test_strict_refuses_and_leaves_the_store_unchanged(raccoon, tmp_path):
    src = _broken_raccoon(raccoon, tmp_path)
    Store.init(tmp_path / "p").close()
    before = _snapshot(tmp_path / "p")
    with pytest.raises((ImageError, FormatError)):
        import_dataset(Store.open(tmp_path / "p"), src, strict=True)
    assert _snapshot(tmp_path / "p") == before
    r = runner.invoke(app, ["import", str(src), "-p", str(tmp_path / "p"), "--strict"])
    assert r.exit_code == 1 and _snapshot(tmp_path / "p") == before


def test_cli_summary_exit_code_batch_show_and_json(raccoon, tmp_path):
    src = _broken_raccoon(raccoon, tmp_path)
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = runner.invoke(app, ["import", str(src), "-p", str(proj)])
    assert r.exit_code == 3, r.output
    assert "; 4 quarantined" in r.output and "Noted for `visionloop health`: truncated_image 1" in r.output
    r = runner.invoke(app, ["batch", "show", "1", "-p", str(proj)])
    assert r.exit_code == 0 and "quarantined 4:" in r.output
    assert "annotations/raccoon-40.xml (object 1 <name>): object has no <name>" in r.output
    r = runner.invoke(app, ["batch", "show", "1", "-p", str(proj), "--json"])
    assert sorted(json.loads(r.output)["summary"]["quarantined"], key=lambda x: x["file"]) == EXPECTED
    # importing the same folder again: nothing new, the list stays; repaired, the list ends
    r = runner.invoke(app, ["import", str(src), "-p", str(proj), "--json"])
    assert r.exit_code == 3 and len(json.loads(r.output)["quarantined"]) == 4
    shutil.copy(raccoon / "annotations" / "raccoon-40.xml", src / "annotations" / "raccoon-40.xml")
    for n in (20, 50):
        shutil.copy(raccoon / "images" / f"raccoon-{n}.jpg", src / "images" / f"raccoon-{n}.jpg")
    shutil.copy(raccoon / "annotations" / "raccoon-30.xml", src / "annotations" / "raccoon-30.xml")
    r = runner.invoke(app, ["import", str(src), "-p", str(proj), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["quarantined"] == []
    with Store.open(proj) as store:
        assert records(store) == [] and store.stats().images == 200


def test_no_fix_says_found_not_fixed(tmp_path):
    from .test_import import _coco, _jpeg

    (tmp_path / "a.jpg").write_bytes(_jpeg(30, 20))
    ann = _coco(tmp_path, [("a.jpg", 30, 20)], [(1, [20, 5, 20, 5])])  # partly outside: clipped, or found
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = runner.invoke(app, ["import", str(ann), "-p", str(proj), "--no-fix"])
    assert r.exit_code == 0 and "Found (kept as they are for `visionloop health`): out_of_bounds 1" in r.output
    assert "Fixed" not in r.output


def test_yolo_unknown_class_id_is_quarantined(tmp_path):
    from .test_import import _jpeg

    root = tmp_path / "y"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("path: .\ntrain: images\nnames: [cat]\n")
    for n in ("a", "b"):
        (root / "images" / f"{n}.jpg").write_bytes(_jpeg(40, 30))
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, root)
    assert report.quarantined == [{"file": "labels/b.txt", "element": "line 2",
                                   "reason": "class index 7 is not in the class names (known indices: 0)"}]
    assert [x.image.file_name for x in store.samples()] == ["images/a.jpg"]


def test_an_xml_with_no_objects_is_a_null_image(raccoon, tmp_path):
    src = tmp_path / "r"
    (src / "annotations").mkdir(parents=True)
    (src / "images").mkdir()
    shutil.copy(raccoon / "images" / "raccoon-1.jpg", src / "images")
    x = (raccoon / "annotations" / "raccoon-1.xml").read_text()
    (src / "annotations" / "raccoon-1.xml").write_text(re.sub(r"<object>.*</object>", "", x, flags=re.S))
    store = Store.init(tmp_path / "p")
    import_dataset(store, src)
    [sample] = list(store.samples())
    assert sample.state is LabelState.NULL and sample.annotations == ()


def test_health_shows_quarantined_truncated_and_annotated_without_annotations(raccoon, tmp_path):
    from sqlalchemy import delete, select

    from visionloop.health import check
    from visionloop.store.schema import AnnotationRow, ImageRow

    src = _broken_raccoon(raccoon, tmp_path)
    store = Store.init(tmp_path / "p")
    import_dataset(store, src)
    with store.engine.begin() as c:  # an image that says "annotated" but lost its annotations
        iid = c.execute(select(ImageRow.id).where(ImageRow.file_name == "images/raccoon-1.jpg")).scalar_one()
        c.execute(delete(AnnotationRow).where(AnnotationRow.image_id == iid))
    found = {f.check: f for f in check(store, duplicates_search=False).findings}
    q = found["quarantined"]
    assert q.count == 4
    assert sorted((e["file"], e["element"], e["reason"]) for e in q.examples) == [
        (r["file"], r["element"], r["reason"]) for r in EXPECTED]
    assert found["truncated_image"].count == 1
    assert found["truncated_image"].examples[0]["file_name"] == "images/raccoon-10.jpg"
    assert found["annotated_without_annotations"].examples == [{"image": iid, "file_name": "images/raccoon-1.jpg"}]


@pytest.mark.parametrize("grouped", [True, False])
def test_coco_entry_that_cannot_be_read_quarantines_its_image(tmp_path, grouped):
    """A bad COCO annotation (a bbox of strings, an unknown category_id) leaves its image out whole — not the
    file — in annotation runs grouped by image and in any order; --strict refuses the first one."""
    from .test_import import _jpeg

    root = tmp_path / "c"
    root.mkdir()
    for n in "abcd":
        (root / f"{n}.jpg").write_bytes(_jpeg(40, 30))
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [2, 2, 5, 5]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": ["10", "20", "3", "4"]},
            {"id": 4, "image_id": 3, "category_id": 7, "bbox": [3, 3, 5, 5]},
            {"id": 5, "image_id": 4, "category_id": 1, "bbox": [4, 4, 8, 6]},
            {"id": 6, "image_id": 4, "category_id": 2, "bbox": [5, 5, 8, 6]}]
    if not grouped:
        anns = [anns[i] for i in (0, 1, 4, 3, 5, 2)]  # image 4's and image 2's annotations apart
    doc = {"images": [{"id": i, "file_name": f"{n}.jpg", "width": 40, "height": 30} for i, n in enumerate("abcd", 1)],
           "annotations": anns, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    (root / "ann.json").write_text(json.dumps(doc))
    pos = {a["id"]: i for i, a in enumerate(anns)}
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, root / "ann.json")
    assert sorted(report.quarantined, key=lambda r: r["element"]) == sorted([
        {"file": "ann.json", "element": f"annotations[{pos[3]}] (id 3)",
         "reason": "bad annotation: bbox values must be numbers, got ['10', '20', '3', '4']; image_id 2 left out"},
        {"file": "ann.json", "element": f"annotations[{pos[4]}] (id 4)",
         "reason": "unknown category_id 7; image_id 3 left out"}], key=lambda r: r["element"])
    landed = {x.image.file_name: sorted((a.label, a.geometry.x0, a.geometry.y0, a.geometry.x1, a.geometry.y1)
                                        for a in x.annotations) for x in store.samples()}
    assert landed == {"a.jpg": [("cat", 1, 2, 11, 12)], "d.jpg": [("cat", 4, 4, 12, 10), ("dog", 5, 5, 13, 11)]}
    store.close()
    Store.init(tmp_path / "q").close()
    before = _snapshot(tmp_path / "q")
    with pytest.raises(FormatError, match=re.escape(f"annotations[{pos[3]}] (id 3)): bad annotation")) as e:
        import_dataset(Store.open(tmp_path / "q"), root / "ann.json", strict=True)
    assert "left out" not in str(e.value) and _snapshot(tmp_path / "q") == before
