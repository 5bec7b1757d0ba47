"""Open Images V6+ CSV.

Columns: https://storage.googleapis.com/openimages/web/download_v7.html (bbox:
ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,
IsInside; image labels: ImageID,Source,LabelName,Confidence; segmentation: MaskPath,ImageID,LabelName,
BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks; class-descriptions-boxable.csv: MID,name).
Local layout (annotations/, images/<split>/, masks/<split>/) as datumaro documents it:
https://openvinotoolkit.github.io/datumaro/stable/docs/data-formats/formats/open_images.html
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, openimages

W, H = 8, 4
A, B, C = "0001eeaf4aed83f9", "000a1249af2bc5f0", "00a159a661a2f5ed"
BBOX_HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf," \
              "IsDepiction,IsInside\n"
BBOX_ROWS = [
    f"{A},xclick,/m/0cmf2,1,0.25,0.75,0.5,1,0,0,0,0,0\n",
    f"{A},activemil,/m/01g317,1,0,0.125,0,0.5,1,-1,1,0,-1\n",
    f"{C},xclick,/m/011k07,1,0.5,1,0,1,0,1,0,1,0\n",
]
LABEL_ROWS = [
    f"{A},verification,/m/0cmf2,1\n",
    f"{A},verification,/m/011k07,0\n",
    f"{C},crowdsource-verification,/m/011k07,1\n",
]
SEG_ROWS = [f"{A}_m0cmf2_b1a2c3d4.png,{A},/m/0cmf2,b1a2c3d4,0.25,0.75,0.5,1,0.86,0.3 0.6;0.5 0.7\n"]


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (2, 2, 2)).save(path)


def _build(root: Path, *, shuffle: bool = False) -> Path:
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "class-descriptions-boxable.csv").write_text("/m/011k07,Tortoise\n/m/0cmf2,Airplane\n/m/01g317,Person\n")
    bbox, labels = list(BBOX_ROWS), list(LABEL_ROWS)
    if shuffle:
        bbox.reverse()
        labels.reverse()
    (ann / "validation-annotations-bbox.csv").write_text(BBOX_HEADER + "".join(bbox[:2] if not shuffle else bbox))
    (ann / "validation-annotations-human-imagelabels-boxable.csv").write_text(
        "ImageID,Source,LabelName,Confidence\n" + "".join(labels if shuffle else labels[:2]))
    (ann / "validation-annotations-object-segmentation.csv").write_text(
        "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\n" + "".join(SEG_ROWS))
    if not shuffle:
        (ann / "oidv6-train-annotations-bbox.csv").write_text(BBOX_HEADER + BBOX_ROWS[2])
        (ann / "oidv6-train-annotations-human-imagelabels.csv").write_text(
            "ImageID,Source,LabelName,Confidence\n" + LABEL_ROWS[2])
    _image(root / f"images/validation/{A}.jpg")
    _image(root / f"images/validation/{B}.jpg")
    _image(root / f"images/{'validation' if shuffle else 'train'}/{C}.jpg")
    # the mask PNG is at twice the image's resolution: resized with nearest neighbour on read
    big = np.zeros((2 * H, 2 * W), dtype=np.uint8)
    big[4:8, 4:12] = 255
    (root / "masks/validation").mkdir(parents=True)
    Image.fromarray(big).save(root / f"masks/validation/{A}_m0cmf2_b1a2c3d4.png")
    return root


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return _build(tmp_path / "oid")


MASK = np.zeros((H, W), dtype=bool)
MASK[2:4, 2:6] = True


def test_reads_open_images(dataset: Path) -> None:
    reader = openimages.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        (f"images/train/{C}.jpg", "train", LabelState.ANNOTATED),
        (f"images/validation/{A}.jpg", "val", LabelState.ANNOTATED),
        (f"images/validation/{B}.jpg", "val", LabelState.MISSING),
    ]
    c, a, _ = samples
    assert c.annotations == (Annotation("Tortoise", Label(), attributes={"source": "crowdsource-verification"}),
                             Annotation("Tortoise", Box(4, 0, 8, 4), attributes={
        "source": "xclick", "occluded": False, "truncated": True, "is_depiction": True, "is_inside": False}),)
    assert a.annotations == (
        Annotation("Airplane", Label(), attributes={"source": "verification"}),
        Annotation("Airplane", Box(2, 2, 6, 4), attributes={
            "source": "xclick", "occluded": False, "truncated": False, "is_depiction": False, "is_inside": False}),
        Annotation("Person", Box(0, 0, 1, 2), crowd=True, attributes={
            "source": "activemil", "occluded": True, "is_depiction": False}),
        Annotation("Airplane", Mask.from_array(MASK), attributes={
            "box_id": "b1a2c3d4", "clicks": "0.3 0.6;0.5 0.7", "predicted_iou": 0.86}),
    )
    assert a.image.metadata == {"negative_labels": ["Tortoise"]}
    assert [(cl.name, cl.id) for cl in reader.classes] == [("Tortoise", 0), ("Airplane", 1), ("Person", 2)]


def test_unsorted_rows_are_spilled_and_grouped(tmp_path: Path, dataset: Path) -> None:
    shuffled = _build(tmp_path / "shuffled", shuffle=True)
    samples = list(openimages.read(shuffled))
    by_name = {s.image.file_name.rsplit("/", 1)[1]: s for s in samples}
    sorted_samples = {s.image.file_name.rsplit("/", 1)[1]: s for s in openimages.read(dataset)}
    assert [s.image.file_name for s in samples] == [f"images/validation/{n}.jpg" for n in (A, B, C)]
    # grouped by image; within an image, labels, boxes, masks, each in file order (reversed here)
    a = sorted_samples[f"{A}.jpg"].annotations
    assert by_name[f"{A}.jpg"].annotations == (a[0], a[2], a[1], a[3])
    assert by_name[f"{A}.jpg"].image.metadata == {"negative_labels": ["Tortoise"]}
    assert by_name[f"{C}.jpg"].annotations == sorted_samples[f"{C}.jpg"].annotations
    assert by_name[f"{B}.jpg"].state is LabelState.MISSING


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    reader = openimages.read(dataset)
    original = list(reader)
    out = tmp_path / "out"
    report = openimages.write(original, out, classes=reader.classes)
    assert report.annotations == {"label": 2, "box": 3, "mask": 1}
    assert not (out / "masks/validation").is_dir() or len(list((out / "masks/validation").iterdir())) == 1
    assert not report.dropped and not report.converted
    assert (out / "annotations/images.meta").read_text().splitlines()[1] == f"{C} {H} {W}"
    back = list(openimages.read(out))
    assert [(s.image.file_name, s.split, s.state, s.annotations, s.image.metadata) for s in back] == [
        (s.image.file_name, s.split, s.state, s.annotations, s.image.metadata) for s in original]


def test_mids_and_conversions(tmp_path: Path) -> None:
    src = tmp_path / "x.png"
    _image(src)
    sample = Sample(ImageRef("x.png", path=str(src)), (
        Annotation("/m/0k4j", Box(0.5, 1, 3, 2), confidence=0.25),
        Annotation("red car", Polygon(((0.0, 0.0, 4.0, 0.0, 4.0, 2.0, 0.0, 2.0),)), crowd=True),
        Annotation("red car", Keypoints((1, 1, 2))),
    ), split="train")
    out = tmp_path / "out"
    report = openimages.write([sample], out)
    assert report.converted == {"polygon -> mask (rasterised as COCO does)": 1}
    assert report.dropped == {"keypoints: Open Images holds boxes, masks and image labels only": 1,
                              "crowd flag: the Open Images segmentation CSV has no crowd flag": 1}
    assert (out / "annotations/class-descriptions-boxable.csv").read_text() == (
        "/m/0k4j,/m/0k4j\n/visionloop/red_car,red car\n")
    rows = (out / "annotations/train-annotations-bbox.csv").read_text().splitlines()
    assert rows[1] == "x,visionloop,/m/0k4j,0.25,0.0625,0.375,0.25,0.5,-1,-1,0,-1,-1"
    (back,) = list(openimages.read(out))
    region = np.zeros((H, W), dtype=bool)
    region[0:2, 0:4] = True
    assert back.annotations == (
        Annotation("/m/0k4j", Box(0.5, 1, 3, 2), confidence=0.25, attributes={"source": "visionloop"}),
        Annotation("red car", Mask.from_array(region)),
    )


def test_bad_number_names_file_and_line(dataset: Path) -> None:
    bad = dataset / "annotations/validation-annotations-bbox.csv"
    bad.write_text(BBOX_HEADER + BBOX_ROWS[0] + f"{A},xclick,/m/0cmf2,1,0.25,abc,0.5,1,0,0,0,0,0\n")
    with pytest.raises(FormatError) as e:
        list(openimages.read(dataset))
    assert "validation-annotations-bbox.csv" in str(e.value) and "line 3, XMax" in str(e.value)


def test_missing_image_for_size(dataset: Path) -> None:
    (dataset / f"images/validation/{A}.jpg").unlink()
    with pytest.raises(ImageError) as e:
        list(openimages.read(dataset))
    assert "line 2" in str(e.value) and "images.meta" in str(e.value)


def test_bad_header(dataset: Path) -> None:
    (dataset / "annotations/validation-annotations-bbox.csv").write_text("ImageID,LabelName,XMin\n")
    with pytest.raises(FormatError) as e:
        list(openimages.read(dataset))
    assert "line 1" in str(e.value) and "XMax" in str(e.value)


def test_detect(dataset: Path, raccoon: Path) -> None:
    assert openimages.detect(dataset).score >= 0.9
    assert detect(dataset) == "openimages"
    assert openimages.detect(raccoon).score == 0


def test_split_without_csv_keeps_its_images(dataset: Path) -> None:
    """Open Images' own download has images/test/ while the test CSVs are a separate download (and a split may
    not be labelled yet): its images are a split of MISSING samples, not dropped (issue 12, category 3)."""
    d, e = "00b1d2e3f4a5b6c7", "00c1d2e3f4a5b6c8"
    _image(dataset / f"images/test/{d}.jpg")
    _image(dataset / f"images/test/{e}.jpg")
    samples = list(openimages.read(dataset))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in samples[3:]] == [
        (f"images/test/{d}.jpg", "test", LabelState.MISSING, ()),
        (f"images/test/{e}.jpg", "test", LabelState.MISSING, ()),
    ]
    assert len(samples) == 5
