"""WIDER FACE reader and writer.

Layout and line format from http://shuoyang1213.me/WIDERFACE/ (the readme.txt in wider_face_split.zip):
a path line, a face-count line, then `x1 y1 w h blur expression illumination invalid occlusion pose`
per face; an image without faces has the count 0 and one line of zeros.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, wider

# as in the real file: trailing spaces after each box line
GT = """0--Parade/0_Parade_marchingband_1_849.jpg
1
449 330 122 149 0 0 0 0 0 0 
0--Parade/0_Parade_Parade_0_904.jpg
2
361 98 263 339 0 0 0 0 0 0 
78 221 7 8 2 0 0 0 0 0 
12--Group/12_Group_Group_12_Group_Group_12_10.jpg
0
0 0 0 0 0 0 0 0 0 0 
"""  # noqa: W291


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16)).save(path)


@pytest.fixture()
def wider_root(tmp_path: Path) -> Path:
    root = tmp_path / "WIDER"
    (root / "wider_face_split").mkdir(parents=True)
    (root / "wider_face_split" / "wider_face_val_bbx_gt.txt").write_text(GT)
    (root / "wider_face_split" / "wider_face_test_filelist.txt").write_text("0--Parade/0_Parade_marchingband_1_737.jpg\n")
    for rel in ("0--Parade/0_Parade_marchingband_1_849.jpg", "0--Parade/0_Parade_Parade_0_904.jpg",
                "12--Group/12_Group_Group_12_Group_Group_12_10.jpg"):
        _image(root / "WIDER_val" / "images" / rel)
    _image(root / "WIDER_test" / "images" / "0--Parade/0_Parade_marchingband_1_737.jpg")
    return root


def test_read_exact(wider_root: Path) -> None:
    reader = wider.read(wider_root)
    assert [(c.id, c.name) for c in reader.classes] == [(0, "face")]
    samples = list(reader)
    assert [(s.split, s.image.file_name, s.state) for s in samples] == [
        ("val", "WIDER_val/images/0--Parade/0_Parade_marchingband_1_849.jpg", LabelState.ANNOTATED),
        ("val", "WIDER_val/images/0--Parade/0_Parade_Parade_0_904.jpg", LabelState.ANNOTATED),
        ("val", "WIDER_val/images/12--Group/12_Group_Group_12_Group_Group_12_10.jpg", LabelState.NULL),
        ("test", "WIDER_test/images/0--Parade/0_Parade_marchingband_1_737.jpg", LabelState.MISSING),
    ]
    zero = dict.fromkeys(wider.FLAGS, 0)
    assert samples[0].annotations == (Annotation("face", Box(449, 330, 571, 479), attributes=zero),)
    assert samples[1].annotations[1] == Annotation("face", Box(78, 221, 85, 229), attributes={**zero, "blur": 2})
    assert samples[0].image.metadata == {"wider_event": "0--Parade"}
    assert samples[0].image.size is None
    assert samples[0].image.path == str(wider_root / "WIDER_val/images/0--Parade/0_Parade_marchingband_1_849.jpg")


def test_round_trip(wider_root: Path, tmp_path: Path) -> None:
    first = list(wider.read(wider_root))
    out = tmp_path / "out"
    report = wider.write(first, out)
    assert report.images == 4 and report.files == 6  # 4 images, 2 ground-truth files and report.annotations == {"box": 3}
    assert report.converted == {"missing -> null (the ground truth lists every image)": 1}
    assert (out / "wider_face_split" / "wider_face_val_bbx_gt.txt").read_text() == GT.replace(" \n", "\n")
    back = list(wider.read(out))
    assert [(s.split, s.image.file_name, s.image.metadata) for s in back] == \
        [(s.split, s.image.file_name, s.image.metadata) for s in first]
    assert [s.annotations for s in back] == [s.annotations for s in first]


def test_write_other_sources(tmp_path: Path) -> None:
    _image(tmp_path / "x.jpg")
    samples = [Sample(ImageRef("x.jpg", path=str(tmp_path / "x.jpg")), (
        Annotation("face", Box(1.5, 2, 4, 6), attributes={"occlusion": 2, "mood": "happy"}),
        Annotation("person", Polygon(((0, 0, 4, 0, 4, 2),))),
        Annotation("face", Keypoints((1, 1, 2))),
    ))]
    out = tmp_path / "out"
    report = wider.write(samples, out)
    assert report.converted == {"polygon -> box (bounds)": 1, "class 'person' -> face": 1}
    assert report.dropped == {"keypoints: WIDER FACE holds boxes only": 1,
                              "attribute: 'mood': WIDER FACE holds its six flags only": 1}
    assert (out / "wider_face_split" / "wider_face_train_bbx_gt.txt").read_text() == \
        "0--unknown/x.jpg\n2\n1.5 2 2.5 4 0 0 0 0 2 0\n0 0 4 2 0 0 0 0 0 0\n"
    assert (out / "WIDER_train" / "images" / "0--unknown" / "x.jpg").is_file()
    back = list(wider.read(out))
    assert back[0].annotations[0].geometry == Box(1.5, 2, 4, 6)


@pytest.mark.parametrize(("text", "where", "message"), [
    ("a/b.jpg\nx\n", "line 2", "expected the number of faces of a/b.jpg, got 'x'"),
    ("a/b.jpg\n1\n1 2 3 4 0 0 0 0 0\n", "line 3", "expected 10 values"),
    ("a/b.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", "line 4", "the file ends inside the faces of a/b.jpg"),
    ("a/b.jpg\n1\n1 2 -3 4 0 0 0 0 0 0\n", "line 3", "must not be negative"),
    ("a/b.jpg\n1\n1 2 3 4 0 0 q 0 0 0\n", "line 3", "'q' is not a number"),
    ("a/b.jpg\n0\n1 0 0 0 0 0 0 0 0 0\n", "line 3", "line of zeros"),
])
def test_bad_input_names_file_and_line(tmp_path: Path, text: str, where: str, message: str) -> None:
    (tmp_path / "wider_face_split").mkdir()
    gt = tmp_path / "wider_face_split" / "wider_face_train_bbx_gt.txt"
    gt.write_text(text)
    with pytest.raises(FormatError) as e:
        list(wider.read(tmp_path))
    assert e.value.path == str(gt) and e.value.where == where and message in e.value.message


def test_zero_faces_without_the_zeros_line(tmp_path: Path) -> None:
    # tolerated: a 0 without the line of zeros, and no count at all (what datumaro 1.13's exporter writes)
    (tmp_path / "wider_face_split").mkdir()
    (tmp_path / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(
        "1--x/a.jpg\n0\n1--x/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n1--x/c.jpg\n0\n1--x/d.jpg\n1--x/e.jpg\n")
    samples = list(wider.read(tmp_path))
    assert [(s.image.file_name, len(s.annotations)) for s in samples] == [
        ("WIDER_train/images/1--x/a.jpg", 0), ("WIDER_train/images/1--x/b.jpg", 1), ("WIDER_train/images/1--x/c.jpg", 0),
        ("WIDER_train/images/1--x/d.jpg", 0), ("WIDER_train/images/1--x/e.jpg", 0)]


def test_detect(wider_root: Path, raccoon: Path) -> None:
    assert wider.detect(wider_root).score >= 0.95
    assert detect(wider_root) == "wider"
    assert detect(wider_root / "wider_face_split" / "wider_face_val_bbx_gt.txt") == "wider"
    assert wider.detect(raccoon).score == 0


def test_interop_with_datumaro(wider_root: Path, tmp_path: Path) -> None:
    import datumaro as dm

    # one split: datumaro names classes after the event folders per split and refuses to merge splits
    # whose folders differ (its limitation, not the files')
    wider.write([s for s in wider.read(wider_root) if s.split == "val"], tmp_path / "out")
    theirs = dm.Dataset.import_from(str(tmp_path / "out"), "wider_face")
    boxes = sorted((item.subset, item.id, tuple(a.get_bbox()), a.attributes["blur"])
                   for item in theirs for a in item.annotations if a.type == dm.AnnotationType.bbox)
    assert boxes == [("val", "0_Parade_Parade_0_904", (78, 221, 7, 8), "2"),
                     ("val", "0_Parade_Parade_0_904", (361, 98, 263, 339), "0"),
                     ("val", "0_Parade_marchingband_1_849", (449, 330, 122, 149), "0")]
    theirs.export(str(tmp_path / "theirs"), "wider_face", save_media=True)  # no count for face-less images
    back = {s.image.file_name.split("/")[-1]: s for s in wider.read(tmp_path / "theirs")}
    assert len(back["0_Parade_Parade_0_904.jpg"].annotations) == 2
    assert back["12_Group_Group_12_Group_Group_12_10.jpg"].annotations == ()


def test_a_split_other_than_train_val_test_is_read(tmp_path) -> None:
    """A `valid` split (Roboflow's name, and what this writer writes for it) was written as
    wider_face_valid_bbx_gt.txt and then silently not read back: every list file present is read (issue 12)."""
    from visionloop.demo import synthetic
    from visionloop.formats import wider

    samples = list(synthetic.shapes(3, folder=tmp_path / "r", splits=(("train", 0.5), ("valid", 0.5))))
    wider.write(samples, tmp_path / "w")
    back = list(wider.read(tmp_path / "w"))
    assert sorted((s.split, s.image.file_name.rsplit("/", 1)[-1]) for s in back) == sorted(
        (s.split, s.image.file_name.rsplit("/", 1)[-1]) for s in samples)
    assert sum(len(s.annotations) for s in back) == sum(1 for s in samples for a in s.annotations)
