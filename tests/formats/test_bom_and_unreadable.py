"""A byte-order mark is read everywhere; an unreadable annotation file is an error, never another format
(issue 11, item 2)."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core.errors import FormatError
from visionloop.demo import synthetic
from visionloop.formats import detect, read, write
from visionloop.formats.base import BOM

runner = CliRunner()


@pytest.fixture(scope="module")
def roboflow(tmp_path_factory):
    """A Roboflow COCO layout: train/_annotations.coco.json beside its images (a folder that also looks like
    classification folders, which is how a broken COCO file used to be read)."""
    root = tmp_path_factory.mktemp("rf")
    samples = [s for s in synthetic.shapes(3, folder=root / "render")]
    samples = [type(s)(s.image, s.annotations, split="train", state=s.state) for s in samples]
    write(samples, root / "coco", format="coco", classes=synthetic.classes())
    return root / "coco"


def _boxes(path, **kw):
    return sorted((s.image.file_name, a.label, a.bbox or a.geometry) for s in read(path, **kw)
                  for a in s.annotations)


def test_a_bom_is_read_by_every_json_path(roboflow, tmp_path):
    src = tmp_path / "bom"
    shutil.copytree(roboflow, src)
    ann = src / "train" / "_annotations.coco.json"
    ann.write_bytes(BOM + ann.read_bytes())
    assert detect(src) == "coco"
    assert _boxes(src) == _boxes(roboflow)
    assert _boxes(ann, format="coco") == _boxes(roboflow / "train" / "_annotations.coco.json", format="coco")


@pytest.mark.parametrize("fmt", ["labelme", "createml", "labelstudio", "via", "datumaro", "vott", "supervisely",
                                 "bdd100k", "vlm", "tfcsv", "voc", "cvat", "yolo", "darknet"])
def test_a_bom_at_the_start_of_each_annotation_file_changes_nothing(roboflow, tmp_path, fmt):
    out = tmp_path / fmt
    write(read(roboflow), out, format=fmt, classes=read(roboflow).classes)
    expected = sorted((s.image.file_name, len(s.annotations)) for s in read(out, format=fmt))
    touched = 0
    for f in out.rglob("*"):
        if f.is_file() and f.suffix.lower() in (".json", ".jsonl", ".xml", ".csv", ".txt", ".yaml", ".names",
                                                ".data"):
            f.write_bytes(BOM + f.read_bytes())
            touched += 1
    assert touched
    assert detect(out) == fmt
    assert sorted((s.image.file_name, len(s.annotations)) for s in read(out, format=fmt)) == expected


@pytest.mark.parametrize(("content", "words"), [
    (b"", "the file is empty"),
    (b"   \n", "the file is empty"),
    (b"[]", "a JSON array"),
    (b"{\"images\": [", "malformed JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{}", "no `images`"),
])
def test_a_broken_coco_file_is_an_error_naming_it_not_another_format(roboflow, tmp_path, content, words):
    src = tmp_path / "broken"
    shutil.copytree(roboflow, src)
    ann = src / "train" / "_annotations.coco.json"
    ann.write_bytes(content)
    with pytest.raises(FormatError) as e:
        detect(src)
    assert e.value.path == str(ann) and words in str(e.value) and "coco" in str(e.value)


def test_import_of_a_broken_file_changes_nothing_and_replacing_annotations_is_said(roboflow, tmp_path):
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = runner.invoke(app, ["import", str(roboflow), "-p", str(proj), "--json"])
    assert r.exit_code == 0, r.output
    n_anns = json.loads(r.stdout)["annotations_added"]
    broken = tmp_path / "broken"
    shutil.copytree(roboflow, broken)
    (broken / "train" / "_annotations.coco.json").write_bytes(b"[]")
    r = runner.invoke(app, ["import", str(broken), "-p", str(proj)])
    assert r.exit_code == 1 and isinstance(r.exception, FormatError) and "a JSON array" in str(r.exception)
    stats = json.loads(runner.invoke(app, ["stats", "-p", str(proj), "--json"]).stdout)
    assert (stats["annotations"], stats["batches"], stats["by_kind"].get("label", 0)) == (n_anns, 1, 0)
    # an import that does replace existing annotations says so
    other = tmp_path / "other"
    shutil.copytree(roboflow, other)
    ann = other / "train" / "_annotations.coco.json"
    doc = json.loads(ann.read_text())
    first = doc["images"][0]["id"]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != first]
    ann.write_text(json.dumps(doc))
    r = runner.invoke(app, ["import", str(other), "-p", str(proj)])
    assert r.exit_code == 0, r.output
    removed = n_anns - len(doc["annotations"])
    assert f"1 images' annotations replaced ({removed} annotations removed)" in r.stdout, r.stdout
