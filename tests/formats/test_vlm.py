"""VLM JSONL (PaliGemma / Florence-2): token normalisation, read, round trip, errors, detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import (
    Annotation,
    Box,
    Caption,
    ClassMap,
    FormatError,
    ImageRef,
    Label,
    LabelState,
    Sample,
)
from visionloop.formats import detect, vlm


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _coords(g: object) -> tuple[float, float, float, float]:
    assert isinstance(g, Box)
    return (g.x0, g.y0, g.x1, g.y1)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """Roboflow's PaliGemma JSONL (https://roboflow.com/formats/paligemma-jsonl): one JSONL per split.

    Token order y_min x_min y_max x_max in 1024 bins, objects joined by " ; "
    (https://ai.google.dev/gemma/docs/paligemma/prompt-system-instructions).
    """
    root = tmp_path / "pg"
    _image(root / "a.jpg", 2048, 1024)
    _image(root / "b.jpg", 100, 100)
    _image(root / "c.jpg", 100, 100)
    lines = [
        {"image": "a.jpg", "prefix": "detect raccoon ; dog",
         "suffix": "<loc0100><loc0200><loc0800><loc0900> raccoon ; <loc0000><loc0000><loc1023><loc1023> dog"},
        {"image": "b.jpg", "prefix": "detect raccoon ; dog", "suffix": ""},
        {"image": "c.jpg", "prefix": "caption en", "suffix": "a green square"},
    ]
    (root / "_annotations.train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_tokens() -> None:
    assert vlm.pali_token(0, 640) == 0 and vlm.pali_token(640, 640) == 1023  # 1024 clips to 1023
    assert vlm.pali_token(320, 640) == 512 and vlm.pali_coord(512, 640) == 320
    assert vlm.florence_token(0, 640) == 0 and vlm.florence_token(640, 640) == 999
    assert vlm.florence_coord(500, 1000) == 500.5


def test_read(dataset: Path) -> None:
    reader = vlm.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("a.jpg", "train", LabelState.ANNOTATED),
        ("b.jpg", "train", LabelState.NULL),
        ("c.jpg", "train", LabelState.ANNOTATED),  # captioned
    ]
    a = samples[0]
    assert [(x.label, _coords(x.geometry)) for x in a.annotations] == [
        ("raccoon", (400.0, 100.0, 1800.0, 800.0)),  # x = 200/1024*2048, y = 100/1024*1024
        ("dog", (0.0, 0.0, 2046.0, 1023.0)),
    ]
    assert (a.image.width, a.image.height) == (2048, 1024)
    assert samples[2].image.metadata == {} and samples[2].annotations == (Annotation("", Caption("a green square")),)
    assert reader.classes.names == ["raccoon", "dog"]


def test_read_florence(tmp_path: Path) -> None:
    """Florence-2 `<OD>` tokens: 1000 bins, a bin's centre as its coordinate, as microsoft/Florence-2's
    processing_florence2.py `BoxQuantizer.dequantize` ('floor' mode: (bin + 0.5) * size / bins)."""
    _image(tmp_path / "x.jpg", 1000, 500)
    (tmp_path / "annotations.jsonl").write_text(json.dumps(
        {"image": "x.jpg", "prefix": "<OD>", "suffix": "car<loc_52><loc_333><loc_932><loc_774>traffic light<loc_0><loc_0><loc_9><loc_19>"}) + "\n")
    (s,) = vlm.read(tmp_path)
    assert [(x.label, _coords(x.geometry)) for x in s.annotations] == [
        ("car", (52.5, 166.75, 932.5, 387.25)), ("traffic light", (0.5, 0.25, 9.5, 9.75))]


@pytest.mark.parametrize("syntax", ["paligemma", "florence2"])
def test_round_trip(dataset: Path, tmp_path: Path, syntax: str) -> None:
    img = _image(tmp_path / "src" / "x.png", 640, 480)
    boxes = [Box(10, 20, 300.5, 470), Box(0, 0, 640, 480)]
    sample = Sample(ImageRef("x.png", path=str(img)), tuple(Annotation(n, b) for n, b in zip(("cat", "dog"), boxes,
                                                                                             strict=True)), split="val")
    report = vlm.write([sample], tmp_path / syntax, syntax=syntax, classes=ClassMap.from_names(["cat", "dog", "bird"]))
    assert report.annotations == {"box": 2}
    line = json.loads((tmp_path / syntax / "val" / "annotations.jsonl").read_text())
    assert line["prefix"] == ("detect cat ; dog ; bird" if syntax == "paligemma" else "<OD>")
    (got,) = vlm.read(tmp_path / syntax)
    bins = 1024 if syntax == "paligemma" else 1000
    for want, ann in zip(boxes, got.annotations, strict=True):
        for w, g, size in zip(_coords(want), _coords(ann.geometry), (640, 480, 640, 480), strict=True):
            assert abs(w - g) <= size / bins  # the format quantises to 1/1024 (1/1000) of the image
    # writing what was read gives the same tokens
    vlm.write([got], tmp_path / f"{syntax}2", syntax=syntax, classes=ClassMap.from_names(["cat", "dog", "bird"]))
    assert (tmp_path / f"{syntax}2" / "val" / "annotations.jsonl").read_text() == (
        tmp_path / syntax / "val" / "annotations.jsonl").read_text()
    if syntax == "paligemma":
        assert line["suffix"] == "<loc0043><loc0016><loc1003><loc0481> cat ; <loc0000><loc0000><loc1023><loc1023> dog"


def test_write_drops(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.png", 10, 10)
    sample = Sample(ImageRef("x.png", path=str(img)), (Annotation("a;b", Box(0, 0, 1, 1)), Annotation("s", Label())))
    report = vlm.write([sample], tmp_path / "out")
    assert report.dropped == {
        "box: class name 'a;b' contains ';', '<' or '>', which the answer syntax uses": 1,
        "label: VLM JSONL cannot hold whole-image labels": 1,
    }


def test_bad_suffix(dataset: Path) -> None:
    f = dataset / "_annotations.train.jsonl"
    f.write_text(f.read_text().splitlines()[1] + "\n" +
                 json.dumps({"image": "a.jpg", "prefix": "detect x", "suffix": "<loc0100><loc0200><loc0800> x"}) + "\n")
    with pytest.raises(FormatError) as err:
        list(vlm.read(dataset))
    assert "_annotations.train.jsonl" in str(err.value) and err.value.where == "line 2"
    f.write_text('{"image": "a.jpg", "prefix": "detect x", "suffix": ""}\n{"image": 3}\n')
    with pytest.raises(FormatError) as err:
        list(vlm.read(dataset))
    assert err.value.where == "line 2"


def test_detect(dataset: Path, tmp_path: Path) -> None:
    assert detect(dataset) == "vlm"
    assert detect(dataset / "_annotations.train.jsonl") == "vlm"
    other = tmp_path / "annotations.jsonl"
    other.write_text('{"text": "hello"}\n')
    assert vlm.detect(tmp_path).score == 0


@pytest.mark.parametrize("syntax", ["paligemma", "florence2"])
def test_captions(tmp_path: Path, syntax: str) -> None:
    """Captioning lines (PaliGemma `caption <lang>` / `describe <lang>`, Florence-2 `<CAPTION>`...) are captions;
    VQA lines stay in metadata; a caption line per caption is written back, the prompt kept."""
    _image(tmp_path / "src" / "x.jpg", 100, 100)
    _image(tmp_path / "src" / "y.jpg", 100, 100)
    lines = [
        {"image": "x.jpg", "prefix": "caption en", "suffix": "a green square"},
        {"image": "x.jpg", "prefix": "<DETAILED_CAPTION>", "suffix": "A green square fills the picture."},
        {"image": "x.jpg", "prefix": "answer en what colour?", "suffix": "green"},
        {"image": "x.jpg", "prefix": "detect box", "suffix": "<loc0000><loc0000><loc0512><loc0512> box"},
        {"image": "y.jpg", "prefix": "describe fr", "suffix": "un carré vert"},
    ]
    (tmp_path / "src" / "annotations.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    x, y = vlm.read(tmp_path / "src")
    assert x.annotations[:2] == (Annotation("", Caption("a green square")),
                                 Annotation("", Caption("A green square fills the picture."),
                                            attributes={"vlm_prompt": "<DETAILED_CAPTION>"}))
    assert [a.label for a in x.annotations[2:]] == ["box"]
    assert x.image.metadata == {"vlm": [{"prefix": "answer en what colour?", "suffix": "green"}]}
    assert y.annotations == (Annotation("", Caption("un carré vert"), attributes={"vlm_prompt": "describe fr"}),)
    assert y.state is LabelState.ANNOTATED
    report = vlm.write([x, y], tmp_path / "out", syntax=syntax)
    assert report.annotations == {"caption": 3, "box": 1} and not report.dropped
    written = [json.loads(line) for line in (tmp_path / "out" / "annotations.jsonl").read_text().splitlines()]
    default = "caption en" if syntax == "paligemma" else "<CAPTION>"
    assert [(w["image"], w["prefix"], w["suffix"]) for w in written if "detect" not in w["prefix"]
            and w["prefix"] != "<OD>"] == [
        ("x.jpg", default, "a green square"), ("x.jpg", "<DETAILED_CAPTION>", "A green square fills the picture."),
        ("y.jpg", "describe fr", "un carré vert")]
    assert len(written) == 4  # y.jpg, captioned without objects, has no detection line
    back = list(vlm.read(tmp_path / "out"))
    assert [a for s in back for a in s.annotations if a.is_caption] == \
        [a for s in (x, y) for a in s.annotations if a.is_caption]
    assert detect(tmp_path / "out") == "vlm"
