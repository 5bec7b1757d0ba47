"""COCO captions reader and writer, captions as `Caption` annotations.

Format: https://cocodataset.org/#format-data ("Image Captioning"). Fixtures: the COCO 2017 layout written here
as JSON that pycocotools 2.0 loads (its `COCO` index is the oracle for which caption belongs to which image), and
datasets written by datumaro 1.13's own `coco_captions` and `datumaro` exporters in the test, compared with
datumaro's own import of the same folder.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Caption
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import coco_captions, datumaro, detect, registry
from visionloop.formats.base import ImageMode

DOC = {
    "info": {"description": "COCO 2017 Dataset"}, "licenses": [],
    "images": [
        {"license": 4, "file_name": "000000397133.jpg", "height": 6, "width": 8, "id": 397133},
        {"license": 1, "file_name": "000000037777.jpg", "height": 6, "width": 8, "id": 37777},
    ],
    "annotations": [
        {"image_id": 397133, "id": 370, "caption": "A man is in a kitchen making pizzas."},
        {"image_id": 37777, "id": 11, "caption": "A kitchen with a stove."},  # not grouped by image
        {"image_id": 397133, "id": 3, "caption": "Man in apron standing on front of oven with pans."},
    ],
}


def _cap(text: str, **kw: object) -> Annotation:
    return Annotation("", Caption(text), **kw)  # type: ignore[arg-type]


@pytest.fixture()
def captions(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    doc = json.loads(json.dumps(DOC))
    doc["images"].append({"license": 1, "file_name": "000000000001.jpg", "height": 6, "width": 8, "id": 1})
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(doc))
    (root / "val2017").mkdir()
    for im in doc["images"]:
        Image.new("RGB", (8, 6)).save(root / "val2017" / im["file_name"])
    return root


def test_read_exact(captions: Path) -> None:
    reader = coco_captions.read(captions)
    samples = list(reader)
    assert len(reader.classes) == 0  # a caption is not a class
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("000000397133.jpg", "val2017", LabelState.ANNOTATED), ("000000037777.jpg", "val2017", LabelState.ANNOTATED),
        ("000000000001.jpg", "val2017", LabelState.MISSING)]
    first = samples[0]
    assert first.annotations == (_cap("A man is in a kitchen making pizzas."),
                                 _cap("Man in apron standing on front of oven with pans."))
    assert first.image.size == (8, 6) and first.image.metadata == {"license": 4, "coco_id": 397133}
    assert first.image.path == str(captions / "val2017" / "000000397133.jpg")
    assert samples[1].annotations == (_cap("A kitchen with a stove."),)
    assert samples[2].annotations == ()


def test_pycocotools_agrees(captions: Path, tmp_path: Path) -> None:
    """pycocotools' index of the fixture and of what we write is what we read: the captions of each image, in
    file order."""
    from pycocotools.coco import COCO

    def theirs(f: Path) -> dict[str, list[str]]:
        c = COCO(str(f))
        return {im["file_name"]: [a["caption"] for a in c.imgToAnns[im["id"]]] for im in c.dataset["images"]}

    def ours(samples: list[Sample]) -> dict[str, list[str]]:
        return {s.image.file_name: [a.geometry.text for a in s.annotations if isinstance(a.geometry, Caption)]
                for s in samples}

    first = list(coco_captions.read(captions))
    assert ours(first) == theirs(captions / "annotations" / "captions_val2017.json")
    coco_captions.write(first, tmp_path / "out", images=ImageMode.NONE)
    written = tmp_path / "out" / "annotations" / "captions_val2017.json"
    assert theirs(written) == ours(first)
    assert sum(len(v) for v in theirs(written).values()) == 3


def test_round_trip_exact(captions: Path, tmp_path: Path) -> None:
    first = list(coco_captions.read(captions))
    first[0] = Sample(first[0].image, (*first[0].annotations, _cap("scored", confidence=0.25),
                                       _cap("with attributes", attributes={"lang": "en"})), split=first[0].split)
    out = tmp_path / "out"
    report = coco_captions.write(first, out)
    assert report.images == 3 and report.annotations == {"caption": 5} and report.files == 4
    assert not report.dropped and not report.converted
    doc = json.loads((out / "annotations" / "captions_val2017.json").read_text())
    assert doc["annotations"] == [
        {"image_id": 397133, "id": 1, "caption": "A man is in a kitchen making pizzas."},
        {"image_id": 397133, "id": 2, "caption": "Man in apron standing on front of oven with pans."},
        {"image_id": 397133, "id": 3, "caption": "scored", "score": 0.25},
        {"image_id": 397133, "id": 4, "caption": "with attributes", "attributes": {"lang": "en"}},
        {"image_id": 37777, "id": 5, "caption": "A kitchen with a stove."}]
    back = list(coco_captions.read(out))

    def key(s: Sample) -> tuple:
        return (s.image.file_name, s.image.size, s.image.metadata, s.state, s.split, s.annotations)

    assert [key(s) for s in back] == [key(s) for s in first]
    coco_captions.write(back, tmp_path / "again")  # and the file is the same the second time
    assert (tmp_path / "again" / "annotations" / "captions_val2017.json").read_bytes() == \
        (out / "annotations" / "captions_val2017.json").read_bytes()


def test_captions_travel_through_datumaro(captions: Path, tmp_path: Path) -> None:
    first = list(coco_captions.read(captions))
    report = registry.write(first, tmp_path / "dm", format="datumaro", images=ImageMode.NONE)
    assert report.annotations == {"caption": 3} and not report.dropped
    back = list(datumaro.read(tmp_path / "dm"))
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back][:2] == [LabelState.ANNOTATED] * 2


def test_write_drops_geometry(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    sample = Sample(ImageRef("a.jpg", 4, 4, path=str(tmp_path / "a.jpg")),
                    (Annotation("cat", Box(0, 0, 1, 1)), _cap("hi")))
    report = coco_captions.write([sample], tmp_path / "out")
    assert report.dropped == {"box: COCO captions holds captions only": 1} and report.annotations == {"caption": 1}
    assert (tmp_path / "out" / "annotations" / "captions_default.json").is_file()
    (back,) = coco_captions.read(tmp_path / "out")
    assert back.split is None and back.annotations == (_cap("hi"),)


def test_bad_input(captions: Path) -> None:
    p = captions / "annotations" / "captions_val2017.json"
    doc = json.loads(json.dumps(DOC))
    doc["annotations"][1]["caption"] = None
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(coco_captions.read(captions))
    assert e.value.path == str(p) and e.value.where == "annotations[1] (id 11)"
    doc["annotations"][1] = {"image_id": 37777, "id": 11, "caption": "x", "score": 3}
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"annotations\[1\] \(id 11\)\): a caption's `score` must be"):
        list(coco_captions.read(captions))
    doc["annotations"][1] = {"image_id": 5, "id": 11, "caption": "x"}
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"annotations\[1\]\): refers to image_id 5"):
        list(coco_captions.read(captions))


def test_detect(captions: Path) -> None:
    assert detect(captions) == "coco_captions"
    assert detect(captions / "annotations" / "captions_val2017.json") == "coco_captions"
    (captions / "annotations" / "instances_val2017.json").write_text(
        '{"images": [], "annotations": [], "categories": []}')
    assert detect(captions) == "coco"


def test_datumaro_reads_our_captions(captions: Path, tmp_path: Path) -> None:
    import datumaro as dm

    coco_captions.write(list(coco_captions.read(captions)), tmp_path / "out")
    theirs = dm.Dataset.import_from(str(tmp_path / "out"), "coco_captions")
    found = {item.id: sorted(a.caption for a in item.annotations) for item in theirs}
    assert found["000000397133"] == ["A man is in a kitchen making pizzas.",
                                     "Man in apron standing on front of oven with pans."]


# ------------------------------------------------------------------ fixtures written by datumaro 1.13's exporters

def _dm_dataset():
    """Captions as datumaro holds them (`Caption(text, id, attributes)`; "score" is an attribute to datumaro), an
    image without any."""
    dm = pytest.importorskip("datumaro")
    from datumaro.components.annotation import Caption as DmCaption

    def image(h: int, w: int, v: int) -> object:
        return dm.Image.from_numpy(np.full((h, w, 3), v, np.uint8))

    return dm, dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="val", media=image(6, 8, 100), annotations=[
            DmCaption("a red square", id=5, attributes={"lang": "en"}),
            DmCaption("a square on grey", id=9, attributes={"score": 0.5})]),
        dm.DatasetItem(id="b", subset="val", media=image(4, 5, 10), annotations=[DmCaption("a dark picture", id=1)]),
        dm.DatasetItem(id="c", subset="val", media=image(4, 5, 10)),
    ])


def _dm_view(dataset) -> dict[str, Counter]:  # type: ignore[no-untyped-def]
    """item id -> its captions as (text, attributes with the score among them), as datumaro holds them."""
    return {item.id: Counter((a.caption, json.dumps(a.attributes, sort_keys=True)) for a in item.annotations)
            for item in dataset}


def _our_view(samples: list[Sample]) -> dict[str, Counter]:
    out = {}
    for s in samples:
        caps = Counter()
        for a in s.annotations:
            assert isinstance(a.geometry, Caption) and a.label == ""
            attrs = dict(a.attributes, **({"score": a.confidence} if a.confidence is not None else {}))
            caps[(a.geometry.text, json.dumps(attrs, sort_keys=True))] += 1
        out[Path(s.image.file_name).stem] = caps
    return out


@pytest.mark.parametrize(("exporter", "fmt"), [("coco_captions", "coco_captions"), ("datumaro", "datumaro")])
def test_datumaro_exports_read_as_datumaro_reads_them(tmp_path: Path, exporter: str, fmt: str) -> None:
    dm, dataset = _dm_dataset()
    root = tmp_path / exporter
    dataset.export(str(root), exporter, save_media=True)
    assert detect(root) == fmt
    reader = registry.read(root)
    samples = list(reader)
    assert len(reader.classes) == 0
    want = _dm_view(dm.Dataset.import_from(str(root), exporter))
    assert _our_view(samples) == want
    assert sum(sum(c.values()) for c in want.values()) == 3
    by = {Path(s.image.file_name).stem: s for s in samples}
    assert by["a"].annotations == (_cap("a red square", attributes={"lang": "en"}),
                                   _cap("a square on grey", confidence=0.5))
    assert by["a"].state is LabelState.ANNOTATED and by["a"].image.size == (8, 6) and by["a"].split == "val"
    # an image without captions: never captioned (COCO captions lists it), listed with nothing (Datumaro)
    assert by["c"].state is (LabelState.MISSING if fmt == "coco_captions" else LabelState.NULL)
    # and what we write of it, datumaro reads the same
    out = tmp_path / f"{exporter}-ours"
    registry.write(samples, out, format=fmt)
    assert _dm_view(dm.Dataset.import_from(str(out), exporter)) == want


# ------------------------------------------------------------------ the COCO (instances) writer keeps captions
def _captioned(tmp_path: Path) -> list[Sample]:
    """Boxes and captions over two splits and no split; one image with boxes but no caption."""
    rows = [("train", "a.jpg", [Box(1, 2, 5, 6)], ["A cat on a mat.", 'It says "hi".']),
            ("train", "b.jpg", [Box(0, 0, 4, 3), Box(2, 1, 8, 6)], []),
            ("train", "c.jpg", [], ["An empty street."]),
            ("val", "d.jpg", [Box(3, 3, 7, 5)], ["Two dogs."]),
            (None, "e.jpg", [], ["Night."])]
    out = []
    for split, name, boxes, texts in rows:
        Image.new("RGB", (8, 6)).save(tmp_path / name)
        out.append(Sample(ImageRef(name, 8, 6, path=str(tmp_path / name)),
                          (*(Annotation("cat", b) for b in boxes), *(_cap(t) for t in texts)), split=split))
    return out


def _view(samples) -> dict[str, tuple]:
    return {s.image.file_name: ([a.geometry for a in s.annotations if not a.is_caption],
                                [a.geometry.text for a in s.annotations if a.is_caption], s.split) for s in samples}


def test_coco_writer_writes_captions_as_coco_2017_does(tmp_path: Path) -> None:
    """COCO 2017 keeps captions in annotations/captions_<split>.json over the same image ids as the objects
    (https://cocodataset.org/#format-data); pycocotools' COCO index of what we write is the oracle."""
    from pycocotools.coco import COCO

    (tmp_path / "src").mkdir()
    samples = _captioned(tmp_path / "src")
    out = tmp_path / "out"
    report = registry.write(samples, out, format="coco")
    assert report.annotations == {"box": 4, "caption": 5} and not report.dropped and not report.converted
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "_annotations.coco.json", "annotations/captions_default.json", "annotations/captions_train.json",
        "annotations/captions_val.json", "train/_annotations.coco.json", "val/_annotations.coco.json"]
    objects, caps = COCO(str(out / "train" / "_annotations.coco.json")), COCO(str(out / "annotations" /
                                                                                   "captions_train.json"))
    assert {i: im["file_name"] for i, im in caps.imgs.items()} == {i: im["file_name"] for i, im in
                                                                   objects.imgs.items()} == {
        1: "a.jpg", 2: "b.jpg", 3: "c.jpg"}
    assert {i: [a["caption"] for a in caps.imgToAnns[i]] for i in caps.imgs} == {
        1: ["A cat on a mat.", 'It says "hi".'], 2: [], 3: ["An empty street."]}
    assert {i: [a["bbox"] for a in objects.imgToAnns[i]] for i in objects.imgs} == {
        1: [[1.0, 2.0, 4.0, 4.0]], 2: [[0.0, 0.0, 4.0, 3.0], [2.0, 1.0, 6.0, 5.0]], 3: []}
    assert [a["id"] for a in caps.dataset["annotations"]] == [1, 2, 3]
    val = COCO(str(out / "annotations" / "captions_val.json"))
    assert {val.imgs[i]["file_name"]: [a["caption"] for a in val.imgToAnns[i]] for i in val.imgs} == {
        "d.jpg": ["Two dogs."]}
    assert detect(out) == "coco"
    back = list(registry.read(out))
    want = _view(samples)
    assert _view(back) == want
    assert {s.image.file_name: s.state for s in back} == dict.fromkeys(want, LabelState.ANNOTATED)
    again = registry.write(back, tmp_path / "again", format="coco")
    assert again.annotations == report.annotations and not again.dropped
    assert (tmp_path / "again" / "annotations" / "captions_train.json").read_bytes() == (
        out / "annotations" / "captions_train.json").read_bytes()


def test_coco_writer_in_parts_writes_the_same_captions(tmp_path: Path) -> None:
    """A parallel write (write_part per part, finish_parts) gives the one-process captions file byte for byte."""
    from visionloop.formats import coco

    (tmp_path / "src").mkdir()
    samples = [s for s in _captioned(tmp_path / "src") if s.split == "train"]
    one = tmp_path / "one"
    reader_classes = ClassMap.from_names(["cat"])
    coco.write(samples, one, classes=reader_classes)
    parts = tmp_path / "parts"
    results = [coco.write_part(samples[:2], parts, classes=reader_classes, start=0),
               coco.write_part(samples[2:], parts, classes=reader_classes, start=2)]
    coco.finish_parts(parts, results, classes=reader_classes)
    for f in ("annotations/captions_train.json", "train/_annotations.coco.json"):
        assert (parts / f).read_bytes() == (one / f).read_bytes(), f
    assert sorted(p.relative_to(parts).as_posix() for p in parts.rglob("*") if p.is_file()) == [
        "annotations/captions_train.json", "train/_annotations.coco.json", "train/a.jpg", "train/b.jpg",
        "train/c.jpg"]


def test_captions_of_no_split_are_refused_naming_the_file(tmp_path: Path) -> None:
    """Roboflow's `<split>/_annotations.coco.json` beside an `annotations/captions_<X>.json` whose X names no split:
    its captions went nowhere (exit 0, captions lost); now refused, naming the file and what to do."""
    root = tmp_path / "ds"
    for split in ("train", "valid"):
        (root / split).mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(root / split / "a.jpg")
        (root / split / "_annotations.coco.json").write_text(json.dumps({
            "images": [{"id": 0, "file_name": "a.jpg", "width": 8, "height": 6}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}))
    (root / "annotations").mkdir()
    caps = {"images": [{"id": 0, "file_name": "a.jpg", "width": 8, "height": 6}],
            "annotations": [{"id": 1, "image_id": 0, "caption": "A cat."}]}
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(caps))
    assert detect(root) == "coco"
    with pytest.raises(FormatError) as e:
        registry.read(root)
    assert (Path(e.value.path).name, e.value.message) == (
        "captions_val2017.json", "no split 'val2017' here for these captions (splits: train, valid)")
    assert "rename it captions_<split>.json" in e.value.hint
    # named after a split: read with that split's objects
    (root / "annotations" / "captions_val2017.json").rename(root / "annotations" / "captions_valid.json")
    got = {(s.split, s.image.file_name): sorted(type(a.geometry).__name__ for a in s.annotations)
           for s in registry.read(root)}
    assert got == {("train", "a.jpg"): ["Box"], ("valid", "a.jpg"): ["Box", "Caption"]}
