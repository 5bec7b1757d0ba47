"""convert: any → any with no project; --strict refuses any loss; --classes renames, merges, drops."""

import json

import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core import ClassMap, LossError
from visionloop.core.classes import ClassMapping
from visionloop.demo import synthetic
from visionloop.formats import read, write
from visionloop.formats.convert import convert


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write(synthetic.shapes(8, folder=root / "render"), root / "coco", format="coco", classes=synthetic.classes())
    return root / "coco"


def test_strict_refuses_loss_and_writes_nothing(shapes, tmp_path):
    out = tmp_path / "voc"
    with pytest.raises(LossError, match="polygon -> box"):
        convert(shapes, out, to="voc", strict=True)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert convert(shapes, out, to="coco", strict=True).images == 8  # COCO holds everything: no loss


def test_class_mapping_renames_merges_and_drops(shapes, tmp_path):
    mapping = ClassMapping({"square": "shape", "triangle": "shape", "disc": None})
    report = convert(shapes, tmp_path / "out", to="coco", classes=mapping)
    src = [a for s in read(shapes) for a in s.annotations]
    n_disc = sum(1 for a in src if a.label == "disc")
    assert report.dropped == {"mask: class 'disc' dropped by the class mapping": n_disc}
    doc = json.loads(next((tmp_path / "out").rglob("_annotations.coco.json")).read_text())
    assert [c["name"] for c in doc["categories"]] == ["shape"]
    assert doc["categories"][0]["id"] == 1  # the id of the first class merged (square)
    written = sum(len(json.loads(f.read_text())["annotations"]) for f in (tmp_path / "out").rglob("*.coco.json"))
    assert written == len(src) - n_disc


def test_classmapping_apply_keeps_order_and_ids():
    cm = ClassMap.from_names(["a", "b", "c", "d"], start=1)
    out = ClassMapping({"b": "a", "c": None, "d": "z"}).apply(cm)
    assert [(c.name, c.id) for c in out] == [("a", 1), ("z", 4)]
    with pytest.raises(ValueError):
        ClassMapping({"a": ""})


def test_cli_strict_and_classes(shapes, tmp_path):
    runner = CliRunner()
    (tmp_path / "map.yaml").write_text("square: box-shape\ndisc: null\n")
    r = runner.invoke(app, ["convert", str(shapes), str(tmp_path / "y"), "--to", "yolo",
                            "--classes", str(tmp_path / "map.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    names = (tmp_path / "y" / "data.yaml").read_text()
    assert "box-shape" in names and "disc" not in names
    r = runner.invoke(app, ["convert", str(shapes), str(tmp_path / "v"), "--to", "voc", "--strict"])
    assert isinstance(r.exception, LossError) and not (tmp_path / "v").exists()
