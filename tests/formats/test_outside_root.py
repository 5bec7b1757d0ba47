"""Images and split folders outside the dataset's folder need --allow-outside-root (issue 11, item 9)."""

import io
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core.errors import FormatError
from visionloop.formats import read
from visionloop.formats.convert import convert

runner = CliRunner()


def _jpeg(path, size=(40, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _coco(folder, file_name):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"images": [{"id": 1, "file_name": file_name, "width": 40, "height": 30}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10]}],
           "categories": [{"id": 1, "name": "x"}]}
    (folder / "_annotations.coco.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture
def secret(tmp_path):
    _jpeg(tmp_path / "private" / "x.jpg")
    return tmp_path / "private" / "x.jpg"


@pytest.mark.parametrize("name", ["../private/x.jpg", "ABS"])
def test_coco_file_name_outside_the_dataset_is_refused(tmp_path, secret, name):
    name = str(secret) if name == "ABS" else name
    ds = _coco(tmp_path / "ds", name)
    with pytest.raises(FormatError) as e:
        list(read(ds))
    assert e.value.where == name and "is outside the dataset folder" in str(e.value)
    assert "--allow-outside-root" in str(e.value)
    with pytest.raises(FormatError, match="outside the dataset folder"):
        convert(ds, tmp_path / "out", to="yolo")
    assert not (tmp_path / "out").exists()
    report = convert(ds, tmp_path / "out", to="yolo", allow_outside_root=True)
    assert report.images == 1


def test_import_refuses_then_allows_with_the_flag(tmp_path, secret):
    ds = _coco(tmp_path / "ds", "../private/x.jpg")
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = runner.invoke(app, ["import", str(ds), "-p", str(proj)])
    assert r.exit_code == 1 and "../private/x.jpg is outside the dataset folder" in str(r.exception)
    assert json.loads(runner.invoke(app, ["stats", "-p", str(proj), "--json"]).stdout)["images"] == 0
    r = runner.invoke(app, ["import", str(ds), "-p", str(proj), "--allow-outside-root", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["images_added"] == 1


def test_an_image_inside_the_dataset_given_by_an_absolute_path_is_fine(tmp_path):
    _jpeg(tmp_path / "ds" / "a.jpg")
    ds = _coco(tmp_path / "ds", str(tmp_path / "ds" / "a.jpg"))
    assert [s.image.path for s in read(ds)] == [str(tmp_path / "ds" / "a.jpg")]


def test_coco_in_annotations_folder_reads_the_images_beside_it(tmp_path):
    _jpeg(tmp_path / "ds" / "val" / "a.jpg")
    _coco(tmp_path / "ds" / "annotations", "a.jpg")
    (tmp_path / "ds" / "annotations" / "_annotations.coco.json").rename(
        tmp_path / "ds" / "annotations" / "instances_val.json")
    assert len(list(read(tmp_path / "ds" / "annotations" / "instances_val.json"))) == 1


def test_yolo_split_outside_the_dataset_is_refused(tmp_path):
    ds = tmp_path / "a" / "b" / "ds"
    ds.mkdir(parents=True)
    _jpeg(tmp_path / "a" / "elsewhere" / "images" / "x.jpg")
    (ds / "data.yaml").write_text("train: ../../elsewhere/images\nnames: [x]\n")
    with pytest.raises(FormatError) as e:
        read(ds)
    assert e.value.where == "key 'train'" and e.value.path == str(ds / "data.yaml")
    assert "outside the dataset folder" in str(e.value)
    (ds / "data.yaml").write_text("train: ../../../../../../../../etc\nnames: [x]\n")
    with pytest.raises(FormatError, match="outside the dataset folder"):
        read(ds)
