"""MOT Challenge reader and writer.

File format: https://motchallenge.net/instructions/ ; classes and the 9-value gt.txt of MOT16/17:
https://arxiv.org/abs/1603.00831 (Table 5); CVAT's labels.txt:
https://docs.cvat.ai/docs/manual/advanced/formats/format-mot/
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, mot
from visionloop.formats.base import ImageMode

SEQINFO = """[Sequence]
name={name}
imDir=img1
frameRate=30
seqLength={n}
imWidth=16
imHeight=12
imExt=.jpg
"""


def _sequence(root: Path, name: str, n: int, gt: str | None, *, seqinfo: bool = True) -> Path:
    seq = root / name
    (seq / "img1").mkdir(parents=True)
    for k in range(1, n + 1):
        Image.new("RGB", (16, 12), (k, 0, 0)).save(seq / "img1" / f"{k:06d}.jpg")
    if seqinfo:
        (seq / "seqinfo.ini").write_text(SEQINFO.format(name=name, n=n))
    if gt is not None:
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text(gt)
    return seq


# the official MOT17 gt.txt is sorted by track id, then frame
GT_BY_ID = """1,1,2,3,4,5,1,1,1
2,1,3,3,4,5,1,1,0.86014
3,1,4,3,4,5,1,1,0.5
1,2,0,0,5,6,0,7,0.25
3,2,1,1,5.5,6,1,3,1
"""
GT_BY_FRAME = "1,4,1,1,2,2,1,1,1\n2,4,2,1,2,2,1,1,1\n"
GT_MOT15 = "1,1,2,3,4,5,-1,-1,-1,-1\n2,1,2.5,3,4,5,1,10.5,2,0\n"


@pytest.fixture()
def mot17(tmp_path: Path) -> Path:
    root = tmp_path / "MOT17"
    _sequence(root / "train", "MOT17-02-FRCNN", 3, GT_BY_ID)
    _sequence(root / "train", "MOT17-04-FRCNN", 2, GT_BY_FRAME)
    _sequence(root / "test", "MOT17-01-FRCNN", 2, None)
    return root


def test_read_exact(mot17: Path) -> None:
    reader = mot.read(mot17)
    assert [(c.id, c.name) for c in reader.classes][:3] == [(1, "pedestrian"), (2, "person on vehicle"), (3, "car")]
    assert reader.classes["reflection"].id == 12
    samples = list(reader)
    assert [(s.split, s.image.file_name) for s in samples] == [
        ("test", "test/MOT17-01-FRCNN/img1/000001.jpg"), ("test", "test/MOT17-01-FRCNN/img1/000002.jpg"),
        ("train", "train/MOT17-02-FRCNN/img1/000001.jpg"), ("train", "train/MOT17-02-FRCNN/img1/000002.jpg"),
        ("train", "train/MOT17-02-FRCNN/img1/000003.jpg"),
        ("train", "train/MOT17-04-FRCNN/img1/000001.jpg"), ("train", "train/MOT17-04-FRCNN/img1/000002.jpg"),
    ]
    assert [s.state for s in samples[:2]] == [LabelState.MISSING, LabelState.MISSING]
    f1, f2, f3 = samples[2:5]
    assert f1.image.size == (16, 12)
    assert f1.image.metadata == {"mot_sequence": "MOT17-02-FRCNN", "mot_frame_rate": 30, "mot_frame": 1}
    assert list(f1.annotations) == [
        Annotation("pedestrian", Box(2, 3, 6, 8), attributes={"conf": 1, "visibility": 1}, track_id=1),
        Annotation("static person", Box(0, 0, 5, 6), attributes={"conf": 0, "visibility": 0.25}, track_id=2),
    ]
    assert list(f2.annotations) == [
        Annotation("pedestrian", Box(3, 3, 7, 8), attributes={"conf": 1, "visibility": 0.86014}, track_id=1)]
    assert [(a.label, a.geometry, a.track_id) for a in f3.annotations] == [
        ("pedestrian", Box(4, 3, 8, 8), 1), ("car", Box(1, 1, 6.5, 7), 2)]
    assert [len(s.annotations) for s in samples[5:]] == [1, 1]


def test_mot15_layout_and_labels_txt(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, "ADL-Rundle-6", 2, GT_MOT15, seqinfo=False)
    samples = list(mot.read(seq))
    assert [s.image.file_name for s in samples] == ["img1/000001.jpg", "img1/000002.jpg"]
    assert samples[0].image.size is None and samples[0].split is None
    assert samples[0].annotations == (
        Annotation("pedestrian", Box(2, 3, 6, 8), attributes={"conf": -1}, track_id=1),)
    assert samples[1].annotations[0].attributes == {"conf": 1, "world": [10.5, 2, 0]}
    cvat = _sequence(tmp_path / "cvat", "task", 1, "1,1,1,1,2,2,1,2,1.0\n")
    (cvat / "gt" / "labels.txt").write_text("cat\ndog\n")
    reader = mot.read(cvat)
    assert [(c.id, c.name) for c in reader.classes] == [(1, "cat"), (2, "dog")]
    assert next(iter(reader)).annotations[0].label == "dog"


def test_round_trip(mot17: Path, tmp_path: Path) -> None:
    first = list(mot.read(mot17))
    out = tmp_path / "out"
    report = mot.write(first, out)
    assert report.images == 7 and report.files == 13  # 7 frames, 3 × (gt.txt, seqinfo.ini) and report.annotations == {"box": 7}
    assert report.converted == {"missing -> null (gt.txt covers every frame)": 2}
    assert not report.dropped
    seq = out / "train" / "MOT17-02-FRCNN"
    assert (seq / "gt" / "gt.txt").read_text() == (
        "1,1,2,3,4,5,1,1,1\n1,2,0,0,5,6,0,7,0.25\n2,1,3,3,4,5,1,1,0.86014\n3,1,4,3,4,5,1,1,0.5\n"
        "3,2,1,1,5.5,6,1,3,1\n")
    assert (seq / "seqinfo.ini").read_text() == SEQINFO.format(name="MOT17-02-FRCNN", n=3)
    back = list(mot.read(out))
    assert [(s.split, s.image.file_name, s.image.metadata, s.image.size) for s in back] == \
        [(s.split, s.image.file_name, s.image.metadata, s.image.size) for s in first]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back][:2] == [LabelState.NULL, LabelState.NULL]  # a gt.txt now exists


def test_write_other_sources(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (10, 8)).save(tmp_path / name)
    samples = [
        Sample(ImageRef("a.jpg", path=str(tmp_path / "a.jpg")),
               (Annotation("truck", Box(1, 1, 3, 3), attributes={"occluded": True}),
                Annotation("pedestrian", Polygon(((0, 0, 4, 0, 4, 2),)), track_id=5),
                Annotation("pedestrian", Keypoints((1, 1, 2))))),
        Sample(ImageRef("b.jpg", path=str(tmp_path / "b.jpg")),
               (Annotation("truck", Box(2, 2, 4, 4), confidence=0.5),)),
    ]
    out = tmp_path / "out"
    report = mot.write(samples, out, images=ImageMode.LINK)
    assert report.converted == {"polygon -> box (bounds)": 1, "confidence -> conf": 1,
                                "no track id -> new unique id": 2, "unknown frame rate -> frameRate=30": 1}
    assert report.dropped == {"keypoints: MOT holds boxes only": 1,
                              "attribute: 'occluded': MOT gt.txt holds conf and visibility only": 1}
    seq = out / "sequence"
    assert (seq / "gt" / "gt.txt").read_text() == "1,6,1,1,2,2,1,13,1\n1,5,0,0,4,2,1,1,1\n2,7,2,2,2,2,0.5,13,1\n"
    assert (seq / "gt" / "labels.txt").read_text().splitlines()[12] == "truck"
    assert (seq / "img1" / "000002.jpg").is_file()
    back = list(mot.read(out))
    assert [a.label for a in back[0].annotations] == ["truck", "pedestrian"]
    assert back[0].image.size == (10, 8)


@pytest.mark.parametrize(("gt", "where", "message"), [
    ("1,1,2,3,4,5,1,1,1\n2,1,x,3,4,5,1,1,1\n", "line 2", "'x' is not a number"),
    ("1,1,2,3\n", "line 1", "at least 6"),
    ("1,1,2,3,4,5,1,14,1\n", "line 1", "class '14' is not one of the 12 classes"),
    ("2,1,2,3,4,5,1,1,1\n1,1,2,3,-4,5,1,1,1\n", "line 2", "must not be negative"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, gt: str, where: str, message: str) -> None:
    seq = _sequence(tmp_path, "S", 2, gt)
    with pytest.raises(FormatError) as e:
        list(mot.read(seq))
    assert str(e.value.path).endswith("S/gt/gt.txt") and e.value.where == where and message in e.value.message


def test_frame_beyond_the_sequence(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, "S", 2, "3,1,2,3,4,5,1,1,1\n")
    with pytest.raises(FormatError, match=r"gt.txt: frame 3 is beyond the sequence's last frame 2"):
        list(mot.read(seq))


def test_detect(mot17: Path, tmp_path: Path, raccoon: Path) -> None:
    assert mot.detect(mot17).score >= 0.9
    assert detect(mot17) == "mot"
    assert detect(mot17 / "train" / "MOT17-02-FRCNN") == "mot"
    assert mot.detect(tmp_path / "nothing").score == 0
    assert detect(raccoon) == "voc"


def test_datumaro_reads_our_mot(mot17: Path, tmp_path: Path) -> None:
    import datumaro as dm

    mot.write(list(mot.read(mot17)), tmp_path / "out")
    theirs = dm.Dataset.import_from(str(tmp_path / "out" / "train" / "MOT17-02-FRCNN"), "mot_seq")
    names = [c.name for c in theirs.categories()[dm.AnnotationType.label]]
    found = sorted((int(item.id), names[a.label], a.attributes["track_id"], tuple(a.get_bbox()))
                   for item in theirs for a in item.annotations)
    assert found == [(1, "pedestrian", 1, (2, 3, 4, 5)), (1, "static person", 2, (0, 0, 5, 6)),
                     (2, "pedestrian", 1, (3, 3, 4, 5)), (3, "car", 2, (1, 1, 5.5, 6)),
                     (3, "pedestrian", 1, (4, 3, 4, 5))]
