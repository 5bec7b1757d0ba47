"""Pascal VOC reader and writer.

Format reference (pixel convention, ImageSets, SegmentationClass/Object PNGs):
http://host.robots.ox.ac.uk/pascal/VOC/voc2012/htmldoc/devkit_doc.html
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path, PurePath

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import voc
from visionloop.formats.base import ImageMode

W, H = 10, 8


# ---------------------------------------------------------------- fixture builders


def _xml(filename: str, objects: list[str], *, size: tuple[int, int] | None = (W, H)) -> str:
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return (f"<annotation><folder>VOC2012</folder><filename>{filename}</filename>{size_xml}"
            f"<segmented>0</segmented>{''.join(objects)}</annotation>")


def _obj(name: str, box: tuple[object, object, object, object], extra: str = "") -> str:
    xmin, ymin, xmax, ymax = box
    return (f"<object><name>{name}</name>{extra}<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")


FLAGS0 = "<pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"


def _image(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)


def _palette_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype(np.uint8))
    im.putpalette([v for rgb in voc.voc_colormap() for v in rgb])
    assert im.mode == "P"
    im.save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


PERSON = _region(slice(1, 4), slice(1, 5))  # bounds Box(1, 1, 5, 4)
DOG = _region(slice(5, 7), slice(5, 9))  # bounds Box(5, 5, 9, 7)
BORDER = _region(slice(4, 5), slice(1, 5))  # void (255) under the person
CAT = _region(slice(0, 2), slice(0, 3))


@pytest.fixture()
def devkit(tmp_path: Path) -> Path:
    """A tiny devkit: splits, flags, instance + class PNGs (a), class PNG only (b), empty (c),
    image without XML (d), image in no list (e)."""
    root = tmp_path / "VOC"
    for stem in "abcde":
        _image(root / "JPEGImages" / f"{stem}.jpg")
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    (ann / "a.xml").write_text(_xml("a.jpg", [
        _obj("person", (2, 2, 5, 4), "<pose>Unspecified</pose><truncated>1</truncated><difficult>0</difficult>"),
        _obj("dog", (5, 5, 9, 8),
             "<pose>Left</pose><truncated>0</truncated><difficult>1</difficult><occluded>1</occluded>"),
        _obj("chair", (1, 7, 2, 8), FLAGS0),
    ]))
    (ann / "b.xml").write_text(_xml("b.jpg", [_obj("cat", (1, 1, 3, 2), FLAGS0)]))
    (ann / "c.xml").write_text(_xml("c.jpg", []))
    (ann / "e.xml").write_text(_xml("e", [_obj("bird", ("2.5", 1, "7.25", 6))]))
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("a\n")
    (main / "val.txt").write_text("b\n")
    (main / "trainval.txt").write_text("a\nb\n")
    (main / "test.txt").write_text("c\n")
    (main / "aeroplane_train.txt").write_text("a -1\n")  # per-class list: not a split
    cls = np.zeros((H, W), dtype=np.uint8)
    cls[PERSON] = 15
    cls[DOG] = 12
    cls[BORDER] = 255
    obj = np.zeros((H, W), dtype=np.uint8)
    obj[PERSON] = 1
    obj[DOG] = 2
    obj[BORDER] = 255
    _palette_png(root / "SegmentationClass" / "a.png", cls)
    _palette_png(root / "SegmentationObject" / "a.png", obj)
    cls_b = np.zeros((H, W), dtype=np.uint8)
    cls_b[CAT] = 8
    cls_b[2, 0:3] = 255
    _palette_png(root / "SegmentationClass" / "b.png", cls_b)
    return root


def _by_stem(samples: list[Sample]) -> dict[str, Sample]:
    return {PurePath(s.image.file_name).stem: s for s in samples}


# ---------------------------------------------------------------- raccoon (real data)


def test_detect_raccoon(raccoon: Path) -> None:
    assert voc.detect(raccoon).score >= 0.9
    assert voc.detect(raccoon / "annotations").score >= 0.9
    assert 0.3 < voc.detect(raccoon / "annotations" / "raccoon-1.xml").score < 0.9
    assert voc.detect(raccoon / "images").score == 0


def test_read_raccoon(raccoon: Path) -> None:
    reader = voc.read(raccoon)
    samples = list(reader)
    assert len(samples) == 200
    assert sum(len(s.annotations) for s in samples) == 217
    assert reader.classes.names == ["raccoon"]
    assert all(isinstance(a.geometry, Box) for s in samples for a in s.annotations)
    assert all(s.split is None and s.state is LabelState.ANNOTATED for s in samples)
    first = _by_stem(samples)["raccoon-1"]
    assert first.image.file_name == "images/raccoon-1.jpg"
    assert first.image.path == str(raccoon / "images" / "raccoon-1.jpg")
    assert (first.image.width, first.image.height) == (650, 417)
    # XML: xmin 81 ymin 88 xmax 522 ymax 408 (1-based inclusive)
    assert [a.geometry for a in first.annotations] == [Box(80, 87, 522, 408)]
    assert first.annotations[0].label == "raccoon"
    assert first.annotations[0].attributes == {"truncated": False, "difficult": False}


def test_read_one_xml_file(raccoon: Path) -> None:
    (sample,) = voc.read(raccoon / "annotations" / "raccoon-1.xml")
    assert sample.image.file_name == "images/raccoon-1.jpg"
    assert [a.geometry for a in sample.annotations] == [Box(80, 87, 522, 408)]


def test_raccoon_round_trip(raccoon: Path, tmp_path: Path) -> None:
    reader = voc.read(raccoon)
    original = list(reader)
    report = voc.write(original, tmp_path / "out", classes=reader.classes, images=ImageMode.LINK)
    assert report.images == 200
    assert report.annotations == {"box": 217}
    assert not report.dropped and not report.converted
    assert voc.detect(tmp_path / "out").score >= 0.9
    again_reader = voc.read(tmp_path / "out")
    again = _by_stem(list(again_reader))
    assert again_reader.classes.names == ["raccoon"]
    assert len(again) == 200
    for stem, sample in _by_stem(original).items():
        back = again[stem]
        assert back.image.file_name == f"JPEGImages/{stem}.jpg"
        assert back.image.size == sample.image.size
        assert back.annotations == sample.annotations
        assert (back.split, back.state) == (sample.split, sample.state)


# ---------------------------------------------------------------- devkit layout


def test_detect_devkit(devkit: Path) -> None:
    assert voc.detect(devkit).score >= 0.9
    assert voc.detect(devkit / "JPEGImages").score == 0


def test_read_devkit(devkit: Path) -> None:
    reader = voc.read(devkit)
    samples = list(reader)
    assert [PurePath(s.image.file_name).stem for s in samples] == ["a", "b", "c", "e", "d"]
    s = _by_stem(samples)
    assert {k: v.split for k, v in s.items()} == {"a": "train", "b": "val", "c": "test", "d": None, "e": None}
    assert s["c"].state is LabelState.NULL and s["c"].annotations == ()
    assert s["d"].state is LabelState.MISSING and s["d"].image.file_name == "JPEGImages/d.jpg"
    assert s["a"].image.file_name == "JPEGImages/a.jpg" and s["a"].image.size == (W, H)

    person, dog, chair = s["a"].annotations
    assert person.label == "person" and isinstance(person.geometry, Mask)
    assert np.array_equal(person.geometry.to_array().astype(bool), PERSON)
    assert person.bbox is None  # the XML box equals the mask's bounds
    assert person.attributes == {"truncated": True, "difficult": False}
    assert dog.label == "dog" and isinstance(dog.geometry, Mask)
    assert np.array_equal(dog.geometry.to_array().astype(bool), DOG)
    assert dog.bbox == Box(4, 4, 9, 8)  # declared box kept where it differs from the mask
    assert dog.attributes == {"truncated": False, "difficult": True, "occluded": True, "pose": "Left"}
    assert chair.geometry == Box(0, 6, 2, 8) and chair.label == "chair"

    cat_box, cat_mask = s["b"].annotations
    assert cat_box.geometry == Box(0, 0, 3, 2)
    assert cat_mask.label == "cat" and cat_mask.attributes == {"semantic": True}
    assert isinstance(cat_mask.geometry, Mask)
    assert np.array_equal(cat_mask.geometry.to_array().astype(bool), CAT)

    (bird,) = s["e"].annotations
    assert bird.geometry == Box(1.5, 0, 7.25, 6)
    assert bird.attributes == {}  # no flags in the XML: none invented
    assert s["e"].image.size == (W, H)
    assert reader.classes.names == ["person", "dog", "chair", "cat", "bird"]


def test_read_split_argument_puts_every_image_in_it(devkit: Path) -> None:
    s = _by_stem(list(voc.read(devkit, split="extra")))
    assert {v.split for v in s.values()} == {"extra"}


def test_labelmap_names_palette_and_rgb_masks(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "labelmap.txt").parent.mkdir(parents=True)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                       "bird:10,20,30::\nfish:40,50,60::\n")
    _image(root / "JPEGImages" / "p.jpg")
    _image(root / "JPEGImages" / "q.jpg")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "p.xml").write_text(_xml("p.jpg", []))
    (root / "Annotations" / "q.xml").write_text(_xml("q.jpg", []))
    palette = np.zeros((H, W), dtype=np.uint8)
    palette[CAT] = 2
    _palette_png(root / "SegmentationClass" / "p.png", palette)
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[DOG] = (10, 20, 30)
    Image.fromarray(rgb, "RGB").save(root / "SegmentationClass" / "q.png")
    reader = voc.read(root)
    assert reader.classes.names == ["bird", "fish"]  # from the label map, before iterating
    s = _by_stem(list(reader))
    (fish,) = s["p"].annotations
    assert fish.label == "fish" and np.array_equal(fish.geometry.to_array().astype(bool), CAT)  # type: ignore[union-attr]
    (bird,) = s["q"].annotations
    assert bird.label == "bird" and np.array_equal(bird.geometry.to_array().astype(bool), DOG)  # type: ignore[union-attr]


def test_devkit_round_trip(devkit: Path, tmp_path: Path) -> None:
    reader = voc.read(devkit)
    original = list(reader)
    out = tmp_path / "out"
    report = voc.write(original, out, classes=reader.classes)
    assert report.images == 5
    assert report.annotations == {"box": 3, "mask": 3}
    assert not report.dropped and not report.converted
    assert (out / "ImageSets" / "Main" / "trainval.txt").read_text() == "a\nb\n"
    assert (out / "ImageSets" / "Main" / "test.txt").read_text() == "c\n"
    assert not (out / "Annotations" / "d.xml").exists()  # MISSING: no XML
    with Image.open(out / "SegmentationObject" / "a.png") as im:
        assert im.mode == "P"
    assert not (out / "SegmentationObject" / "b.png").exists()  # semantic only
    back_reader = voc.read(out)
    back = _by_stem(list(back_reader))
    assert back_reader.classes.names == reader.classes.names
    for stem, sample in _by_stem(original).items():
        again = back[stem]
        assert (again.split, again.state) == (sample.split, sample.state), stem
        expected = [
            a if a.attributes.get("semantic") else
            Annotation(a.label, a.geometry, attributes={"difficult": False, "truncated": False, **a.attributes},
                       bbox=a.bbox)
            for a in sample.annotations
        ]
        assert list(again.annotations) == expected, stem


def test_datumaro_reads_our_voc(devkit: Path, tmp_path: Path) -> None:
    import datumaro as dm

    reader = voc.read(devkit)
    voc.write(list(reader), tmp_path / "out", classes=reader.classes)
    dataset = dm.Dataset.import_from(str(tmp_path / "out"), "voc")
    names = dataset.categories()[dm.AnnotationType.label]
    found = {(item.id, names[a.label].name) for item in dataset for a in item.annotations
             if a.type == dm.AnnotationType.bbox}
    # datumaro reads the images listed in ImageSets (a: train, b: val); e and d are in no list
    assert found == {("a", "person"), ("a", "dog"), ("a", "chair"), ("b", "cat")}


# ---------------------------------------------------------------- bad input


def _flat(tmp_path: Path, xml_text: str, name: str = "bad.xml") -> Path:
    root = tmp_path / "flat"
    _image(root / "images" / "x.jpg")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / name).write_text(xml_text)
    return root


def test_malformed_xml(tmp_path: Path) -> None:
    root = _flat(tmp_path, "<annotation>\n  <filename>x.jpg</filename>\n  <object><name>a</object>\n")
    with pytest.raises(FormatError) as err:
        list(voc.read(root))
    assert "bad.xml" in str(err.value) and "line 3" in str(err.value)
    assert err.value.where is not None and err.value.where.startswith("line 3, column")


def test_non_numeric_coordinate(tmp_path: Path) -> None:
    root = _flat(tmp_path, _xml("x.jpg", [_obj("a", (1, 1, 4, 4)), _obj("a", (1, 1, "abc", 4))]))
    with pytest.raises(FormatError) as err:
        list(voc.read(root))
    assert err.value.where == "object 2 <xmax>"
    assert "'abc'" in str(err.value) and "bad.xml" in str(err.value)


def test_missing_bndbox(tmp_path: Path) -> None:
    root = _flat(tmp_path, _xml("x.jpg", ["<object><name>a</name></object>"]))
    with pytest.raises(FormatError) as err:
        list(voc.read(root))
    assert err.value.where == "object 1 <bndbox>"


def test_missing_image(tmp_path: Path) -> None:
    root = _flat(tmp_path, _xml("nowhere.jpg", []), name="lost.xml")
    with pytest.raises(ImageError) as err:
        list(voc.read(root))
    assert "lost.xml" in str(err.value) and "nowhere.jpg" in str(err.value)


def test_image_found_by_stem_and_missing_size(tmp_path: Path) -> None:
    root = _flat(tmp_path, _xml("x", [_obj("a", (1, 1, 4, 4))], size=None), name="x.xml")
    (sample,) = voc.read(root)
    assert sample.image.file_name == "images/x.jpg"
    assert sample.image.size is None  # undeclared: the ingest stage probes


def test_detect_rejects_cvat_xml(tmp_path: Path) -> None:
    (tmp_path / "annotations.xml").write_text("<annotations><version>1.1</version></annotations>")
    assert voc.detect(tmp_path / "annotations.xml").score == 0
    assert voc.detect(tmp_path).score == 0


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize(("value", "text"), [
    (81, "81"), (81.0, "81"), (80.9999999, "81"), (0.0, "0"), (-0.0000001, "0"), (81.5, "81.5"),
    (11.25, "11.25"), (30.127, "30.13"), (1e20, "100000000000000000000"), (-3.5, "-3.5"),
])
def test_coordinate_rounding(value: float, text: str) -> None:
    assert voc.format_coordinate(value) == text


def _ref(name: str) -> ImageRef:
    return ImageRef(name, width=W, height=H)


def test_write_converts_and_drops(tmp_path: Path) -> None:
    out = tmp_path / "out"
    polygon = Polygon.from_points([(1, 1), (6, 2), (3, 7)])
    rotated = RotatedBox(5, 4, 2, 2, 90)
    samples = [
        Sample(_ref("x/a.jpg"), (
            Annotation("thing", Box(0.25, 1, 4, 5), attributes={"difficult": True, "color": "red", "n": 3}),
            Annotation("thing", polygon),
            Annotation("thing", rotated),
            Annotation("thing", Keypoints((1, 1, 2))),
            Annotation("scene", Label()),
            Annotation("thing", Mask.from_array(np.zeros((H, W), dtype=np.uint8))),
        ), split="train"),
        Sample(_ref("y/a.jpg"), (), split="valid"),
    ]
    report = voc.write(samples, out, classes=ClassMap.from_names(["thing"]), images=ImageMode.NONE)
    assert report.images == 2
    assert report.annotations == {"box": 3, "label": 1}  # the image label: ImageSets/Main/scene_train.txt
    assert report.converted == {"polygon -> box": 1, "rotated_box -> box": 1}
    assert report.dropped == {"keypoints: VOC holds boxes and masks only": 1, "mask: empty mask": 1}
    assert (out / "ImageSets" / "Main" / "scene_train.txt").read_text() == "a  1\n"
    # name collision: unique suffix, nothing overwritten
    assert sorted(p.name for p in (out / "Annotations").iterdir()) == ["a.xml", "a_2.xml"]
    assert ET.parse(out / "Annotations" / "a_2.xml").getroot().findtext("filename") == "a_2.jpg"
    assert (out / "ImageSets" / "Main" / "valid.txt").read_text() == "a_2\n"
    assert not (out / "JPEGImages").exists()

    xml = ET.parse(out / "Annotations" / "a.xml").getroot()
    first = xml.find("object")
    assert first is not None and first.findtext("difficult") == "1"
    assert [first.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == ["1.25", "2", "4", "5"]

    # the images were not written (ImageMode.NONE): check the XML itself
    parsed = voc.parse_annotation(xml, path=out / "Annotations" / "a.xml")
    box, from_polygon, from_rotated = (a.geometry for a in parsed.objects)
    assert box == Box(0.25, 1, 4, 5)
    assert from_polygon == polygon.bounds() == Box(1, 1, 6, 7)
    assert isinstance(from_rotated, Box)
    expected = rotated.bounds()
    assert (from_rotated.x0, from_rotated.y0, from_rotated.x1, from_rotated.y1) == pytest.approx(
        (expected.x0, expected.y0, expected.x1, expected.y1))
    assert parsed.objects[0].attributes == {"difficult": True, "truncated": False, "color": "red", "n": 3}


def test_write_refuses_a_used_folder(tmp_path: Path) -> None:
    samples = [Sample(_ref("a.jpg"), (Annotation("x", Box(0, 0, 2, 2)),))]
    voc.write(samples, tmp_path / "out", images=ImageMode.NONE)
    with pytest.raises(FormatError):
        voc.write(samples, tmp_path / "out", images=ImageMode.NONE)


def test_write_masks_from_another_format(tmp_path: Path) -> None:
    """Masks without a declared bbox (as COCO gives them) come back identical, in one object each."""
    image = tmp_path / "src" / "m.png"
    _image(image)
    a = Annotation("cat", Mask.from_array(CAT))
    b = Annotation("dog", Mask.from_array(DOG), attributes={"difficult": False, "truncated": False})
    overlap = Annotation("dog", Mask.from_array(_region(slice(0, 1), slice(0, 1))))
    sample = Sample(ImageRef("m.png", path=str(image)), (a, b, overlap))
    report = voc.write([sample], tmp_path / "out")
    assert report.annotations == {"mask": 3}
    assert report.converted == {"mask -> mask (overlapping pixels go to the later object)": 1}
    (back,) = voc.read(tmp_path / "out")
    assert back.image.size == (W, H)  # the writer read it from the file
    cat, dog, corner = back.annotations
    assert cat.label == "cat" and cat.bbox is None
    assert np.array_equal(cat.geometry.to_array().astype(bool), CAT & ~overlap.geometry.to_array().astype(bool))  # type: ignore[union-attr]
    assert dog == b
    assert corner.label == "dog" and corner.geometry == overlap.geometry


def test_write_escapes_text(tmp_path: Path) -> None:
    samples = [Sample(_ref("a&b.jpg"), (Annotation("R&D <x>", Box(0, 0, 2, 2), attributes={"note": "a<b"}),))]
    voc.write(samples, tmp_path / "out", images=ImageMode.NONE)
    xml = ET.parse(tmp_path / "out" / "Annotations" / "a&b.xml").getroot()
    assert xml.findtext("filename") == "a&b.jpg"
    (obj,) = voc.parse_annotation(xml, path=tmp_path / "x.xml").objects
    assert obj.label == "R&D <x>" and obj.attributes["note"] == "a<b"
