"""Classification CSV (one-hot and filename,label): read, multi-label, round trip, errors, detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageRef, Label, LabelState, Sample
from visionloop.formats import clscsv, detect


def _image(path: Path, width: int = 8, height: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _labels(sample: Sample) -> list[str]:
    assert all(isinstance(a.geometry, Label) for a in sample.annotations)
    return [a.label for a in sample.annotations]


@pytest.fixture()
def onehot(tmp_path: Path) -> Path:
    """Roboflow's multiclass/multi-label export: <split>/_classes.csv, header cells after ", ".

    https://roboflow.com/formats/multiclass-classification-csv ; Roboflow's writer is not public: datumaro's
    `roboflow_multiclass` importer reads the same layout as an oracle in test_tool_sources.py.
    """
    root = tmp_path / "cls"
    (root / "train").mkdir(parents=True)
    (root / "train" / "_classes.csv").write_text(
        "filename, cat, dog, outdoor\n"
        "a.jpg, 1, 0, 1\n"
        "b.jpg, 0, 1, 0\n"
        "c.jpg, 0, 0, 0\n"
    )
    (root / "valid").mkdir()
    (root / "valid" / "_classes.csv").write_text("filename, cat, dog, outdoor\nd.jpg, 0, 1, 0\n")
    for name in ("train/a.jpg", "train/b.jpg", "train/c.jpg", "valid/d.jpg"):
        _image(root / name)
    return root


def test_read_onehot(onehot: Path) -> None:
    reader = clscsv.read(onehot)
    assert [(c.name, c.id) for c in reader.classes] == [("cat", 0), ("dog", 1), ("outdoor", 2)]
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state, _labels(s)) for s in samples] == [
        ("a.jpg", "train", LabelState.ANNOTATED, ["cat", "outdoor"]),
        ("b.jpg", "train", LabelState.ANNOTATED, ["dog"]),
        ("c.jpg", "train", LabelState.NULL, []),
        ("d.jpg", "valid", LabelState.ANNOTATED, ["dog"]),
    ]
    assert samples[0].image.path == str(onehot / "train" / "a.jpg")


def test_read_pairs(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("filename,label\na.jpg,cat\nb.jpg,dog\na.jpg,outdoor\nc.jpg,\n")
    samples = list(clscsv.read(tmp_path))
    assert [(s.image.file_name, s.state, _labels(s)) for s in samples] == [
        ("a.jpg", LabelState.ANNOTATED, ["cat", "outdoor"]),  # rows need not be adjacent
        ("b.jpg", LabelState.ANNOTATED, ["dog"]),
        ("c.jpg", LabelState.NULL, []),
    ]


@pytest.mark.parametrize("layout", ["onehot", "pairs"])
def test_round_trip(onehot: Path, tmp_path: Path, layout: str) -> None:
    originals = list(clscsv.read(onehot))
    report = clscsv.write(originals, tmp_path / layout, layout=layout)
    assert report.annotations == {"label": 4} and not report.dropped
    again = list(clscsv.read(tmp_path / layout))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in again] == [
        (s.image.file_name, s.split, s.state, s.annotations) for s in originals]
    text = (tmp_path / layout / "train" / "_classes.csv").read_text().splitlines()
    if layout == "onehot":
        assert text == ["filename,cat,outdoor,dog", "a.jpg,1,1,0", "b.jpg,0,0,1", "c.jpg,0,0,0"]
    else:
        assert text == ["filename,label", "a.jpg,cat", "a.jpg,outdoor", "b.jpg,dog", "c.jpg,"]


def test_write_drops_geometry(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.jpg")
    sample = Sample(ImageRef("x.jpg", path=str(img)), (Annotation("cat", Label()), Annotation("cat", Box(0, 0, 1, 1))))
    missing = Sample(ImageRef("y.jpg", path=str(img)), (), state=LabelState.MISSING)
    report = clscsv.write([sample, missing], tmp_path / "out")
    assert report.dropped == {"box: a classification CSV holds whole-image labels only": 1}
    assert report.converted == {"image missing labels -> null (no class)": 1}
    assert (tmp_path / "out" / "_classes.csv").read_text() == "filename,cat\nx.jpg,1\ny.jpg,0\n"


def test_bad_value(onehot: Path) -> None:
    (onehot / "train" / "_classes.csv").write_text("filename, cat, dog\na.jpg, 1, 0\nb.jpg, 1, yes\n")
    with pytest.raises(FormatError) as err:
        list(clscsv.read(onehot / "train"))
    assert "_classes.csv" in str(err.value) and err.value.where == "line 3, column 3" and "'yes'" in err.value.message


def test_detect(onehot: Path, tmp_path: Path) -> None:
    assert detect(onehot) == "clscsv"
    assert detect(onehot / "train" / "_classes.csv") == "clscsv"
    retina = tmp_path / "_classes.csv"  # RetinaNet's classes file shares the name, not the header
    retina.write_text("cow,0\ncat,1\n")
    assert clscsv.detect(retina).score == 0
    tf = tmp_path / "tf.csv"
    tf.write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,10,x,1,1,2,2\n")
    assert clscsv.detect(tf).score == 0
