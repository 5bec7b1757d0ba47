"""SageMaker Ground Truth output manifest.

Fixture lines laid out as Ground Truth writes them, following
https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html : the bounding box output
example (identify-dogs-and-toys, class-map {"0": "dog", "5": "bone"}), the semantic segmentation
output (label attribute ending in -ref, internal-color-map with BACKGROUND #ffffff), the image
classification output ("sport" → football) and the multi-label classification output (genres).

AWS's own readers of these lines (issue 12; no Ground Truth writer installs offline), in aws/amazon-sagemaker-examples:
- bounding boxes: ground_truth_labeling_jobs/ground_truth_object_detection_tutorial/object_detection_tutorial.ipynb
  ("Postprocess the output manifest": `datum[label]["image_size"][0]`, `datum[label]["annotations"]` read by
  ground_truth_od.py `BoundingBox` as `class_id`/`left`/`top`/`width`/`height` with `xmax = left + width`,
  `datum[label + "-metadata"]["objects"][i]["confidence"]` by box index, `human-annotated == "yes"`);
  `_aws_boxes` below replays that parse and must agree with ours, on the fixture and on what we write;
- semantic segmentation: ground_truth_labeling_jobs/sagemaker_ground_truth_semantic_segmentation_mask_index_correction.py
  `SemSegParser.get_class_masks` (the label PNG is read by the exact `hex-color` of each `internal-color-map`
  entry, BACKGROUND `#ffffff`; `job-name` may carry a `labeling-job/` prefix).
The fixture's fields agree with both.

Real output (issue 12): t04glovern/aws-ground-truth-cat-labels output.manifest @ 6d2f6d12, the whole file
verbatim (a 2019 bounding-box job, compact JSON, keys in Ground Truth's own order, a line with no box): read
the same as the tutorial's parse. No real classification manifest was found committed (searched: find_files
output.manifest, 11 repositories; the classification lines seen were README/doc quotes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.formats import detect, sagemaker

DATE = "2018-10-18T22:18:13.527256"
LINES = [
    {"source-ref": "s3://AWSDOC-EXAMPLE-BUCKET/example_image.png",
     "bounding-box-attribute-name": {
         "image_size": [{"width": 500, "height": 400, "depth": 3}],
         "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128},
                         {"class_id": 5, "left": 161, "top": 250, "width": 30, "height": 30},
                         {"class_id": 5, "left": 20, "top": 20, "width": 30, "height": 30}]},
     "bounding-box-attribute-name-metadata": {
         "objects": [{"confidence": 0.8}, {"confidence": 0.9}, {"confidence": 0.9}],
         "class-map": {"0": "dog", "5": "bone"}, "type": "groundtruth/object-detection", "human-annotated": "yes",
         "creation-date": DATE, "job-name": "identify-dogs-and-toys"}},
    {"source-ref": "s3://AWSDOC-EXAMPLE-BUCKET/example_city_image.png",
     "city-streets-ref": "s3://AWSDOC-EXAMPLE-BUCKET/output/label-city-streets/annotations/consolidated-annotation/output/0_2018-10-18T22:18:13.527256.png",
     "city-streets-ref-metadata": {
         "internal-color-map": {"0": {"class-name": "BACKGROUND", "confidence": 0.9, "hex-color": "#ffffff"},
                                "1": {"class-name": "buildings", "confidence": 0.9, "hex-color": "#2acf59"},
                                "2": {"class-name": "road", "confidence": 0.9, "hex-color": "#f28333"},
                                "3": {"class-name": "sky", "confidence": 0.9, "hex-color": "#0000ff"}},
         "type": "groundtruth/semantic-segmentation", "human-annotated": "yes", "creation-date": DATE,
         "job-name": "label-city-streets"},
     "sport": 0,
     "sport-metadata": {"class-name": "football", "confidence": 0.8, "type": "groundtruth/image-classification",
                        "job-name": "identify-sport", "human-annotated": "yes", "creation-date": DATE}},
    {"source-ref": "s3://AWSDOC-EXAMPLE-BUCKET/movie.jpg",
     "genres": [1, 0],
     "genres-metadata": {"job-name": "labeling-job/genres", "confidence-map": {"1": 0.95, "0": 0.77},
                         "class-map": {"1": "drama", "0": "comedy"}, "human-annotated": "yes",
                         "creation-date": DATE, "type": "groundtruth/image-classification-multi-label"}},
    {"source-ref": "s3://AWSDOC-EXAMPLE-BUCKET/unlabelled.jpg"},
    {"source-ref": "s3://AWSDOC-EXAMPLE-BUCKET/nothing.jpg",
     "bounding-box-attribute-name": {"image_size": [{"width": 20, "height": 10, "depth": 3}], "annotations": []},
     "bounding-box-attribute-name-metadata": {"objects": [], "class-map": {}, "type": "groundtruth/object-detection",
                                              "human-annotated": "no", "creation-date": DATE,
                                              "job-name": "identify-dogs-and-toys"}},
]


def _city_mask() -> np.ndarray:
    rgb = np.full((10, 20, 3), 255, np.uint8)
    rgb[0:4, :] = (0x2A, 0xCF, 0x59)
    rgb[7:10, 5:15] = (0xF2, 0x83, 0x33)
    return rgb


@pytest.fixture()
def manifest(tmp_path: Path) -> Path:
    root = tmp_path / "gt"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (500, 400)).save(root / "images" / "example_image.png")
    Image.new("RGB", (20, 10)).save(root / "images" / "example_city_image.png")
    for name in ("movie.jpg", "unlabelled.jpg", "nothing.jpg"):
        Image.new("RGB", (20, 10)).save(root / "images" / name)
    masks = root / "output" / "label-city-streets" / "annotations" / "consolidated-annotation" / "output"
    masks.mkdir(parents=True)
    Image.fromarray(_city_mask(), "RGB").save(masks / "0_2018-10-18T22:18:13.527256.png")
    f = root / "output.manifest"
    f.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    return f


def test_detect(manifest: Path) -> None:
    assert sagemaker.detect(manifest).score >= 0.9
    assert detect(manifest.parent) == "sagemaker"


def test_read_exact(manifest: Path) -> None:
    reader = sagemaker.read(manifest)
    boxes, city, movie, unlabelled, nothing = list(reader)
    assert [(c.name, c.id) for c in reader.classes] == [("dog", 0), ("bone", 5), ("buildings", 1), ("road", 2),
                                                        ("sky", 3), ("football", 6), ("drama", 7), ("comedy", 8)]
    assert boxes.image.file_name == "example_image.png" and boxes.image.size == (500, 400)
    assert boxes.image.path == str(manifest.parent / "images" / "example_image.png")
    assert boxes.image.metadata == {"source-ref": "s3://AWSDOC-EXAMPLE-BUCKET/example_image.png"}
    assert boxes.annotations == (
        Annotation("dog", Box(111, 134, 172, 262), source=Source.HUMAN, confidence=0.8),
        Annotation("bone", Box(161, 250, 191, 280), source=Source.HUMAN, confidence=0.9),
        Annotation("bone", Box(20, 20, 50, 50), source=Source.HUMAN, confidence=0.9),
    )
    buildings, road, football = city.annotations
    assert city.image.size == (20, 10)
    assert (buildings.label, buildings.attributes, buildings.confidence) == ("buildings", {"semantic": True}, 0.9)
    assert isinstance(buildings.geometry, Mask) and isinstance(road.geometry, Mask)
    np.testing.assert_array_equal(buildings.geometry.to_array(), np.all(_city_mask() == (0x2A, 0xCF, 0x59), axis=2))
    assert road.geometry.area == 30 and road.geometry.bounds() == Box(5, 7, 15, 10)
    assert football == Annotation("football", Label(), source=Source.HUMAN, confidence=0.8)
    assert movie.annotations == (Annotation("drama", Label(), source=Source.HUMAN, confidence=0.95),
                                 Annotation("comedy", Label(), source=Source.HUMAN, confidence=0.77))
    assert unlabelled.state is LabelState.MISSING
    assert nothing.state is LabelState.NULL


def _aws_boxes(manifest: Path) -> list[tuple[str, tuple[int, int], list[tuple[str, tuple[float, ...], float]], bool]]:
    """The object-detection tutorial's parse (see the module docstring), class names through `class-map`."""
    found = []
    for line in manifest.read_text().splitlines():
        datum = json.loads(line)
        for key in datum:
            meta = datum.get(f"{key}-metadata")
            if not isinstance(meta, dict) or meta.get("type") != "groundtruth/object-detection":
                continue
            size = datum[key]["image_size"][0]
            boxes = [(meta["class-map"][str(b["class_id"])], (b["left"], b["top"], b["left"] + b["width"],
                                                             b["top"] + b["height"]), meta["objects"][i]["confidence"])
                     for i, b in enumerate(datum[key]["annotations"])]
            found.append((datum["source-ref"], (size["width"], size["height"]), boxes,
                          meta["human-annotated"] == "yes"))
    return found


def _our_boxes(samples: list[Sample]) -> list[tuple[str, tuple[int, int], list[tuple[str, tuple[float, ...], float]],
                                                 bool]]:
    return [(s.image.metadata["source-ref"], s.image.size,
             [(a.label, (a.box.x0, a.box.y0, a.box.x1, a.box.y1), a.confidence) for a in s.annotations],
             all(a.source is Source.HUMAN for a in s.annotations))
            for s in samples if s.annotations and all(isinstance(a.geometry, Box) for a in s.annotations)]


def test_aws_tutorial_parse_agrees(manifest: Path, tmp_path: Path) -> None:
    samples = list(sagemaker.read(manifest))
    theirs = _aws_boxes(manifest)
    assert theirs == [
        ("s3://AWSDOC-EXAMPLE-BUCKET/example_image.png", (500, 400),
         [("dog", (111, 134, 172, 262), 0.8), ("bone", (161, 250, 191, 280), 0.9), ("bone", (20, 20, 50, 50), 0.9)],
         True),
        ("s3://AWSDOC-EXAMPLE-BUCKET/nothing.jpg", (20, 10), [], False)]
    assert _our_boxes(samples) == theirs[:1]  # the empty auto-labelled line is a NULL sample, no boxes
    sagemaker.write(samples, tmp_path / "out")  # what we write parses the same way
    assert _aws_boxes(tmp_path / "out" / "output.manifest")[:1] == theirs[:1]


def test_roundtrip(manifest: Path, tmp_path: Path) -> None:
    first = list(sagemaker.read(manifest))
    out = tmp_path / "out"
    report = sagemaker.write(first, out)
    assert report.images == 5 and report.files == 5
    assert dict(report.annotations) == {"box": 3, "mask": 2, "label": 3}
    assert not report.converted and not report.dropped
    back = list(sagemaker.read(out))
    assert [s.image.file_name for s in back] == [s.image.file_name for s in first]
    assert [s.image.metadata["source-ref"] for s in back] == [line["source-ref"] for line in LINES]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [s.state for s in first]


def test_write_conversions_and_splits(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    ref = ImageRef("a.png", width=10, height=10, path=str(tmp_path / "a.png"))
    m1 = np.zeros((10, 10), np.uint8)
    m1[0:2] = 1
    m2 = np.zeros((10, 10), np.uint8)
    m2[5:7] = 1
    sample = Sample(ref, (Annotation("p", Polygon(((0, 0, 4, 0, 4, 3),)), source=Source.MODEL, confidence=0.5),
                          Annotation("cell", Mask.from_array(m1)), Annotation("cell", Mask.from_array(m2)),
                          Annotation("k", Keypoints((1, 1, 2))), Annotation("b", Box(0, 0, 1, 1), crowd=True)),
                    split="train")
    out = tmp_path / "o"
    report = sagemaker.write([sample], out)
    assert (out / "train.manifest").is_file()
    assert report.converted == {"polygon -> box": 1, "mask -> semantic class mask (instances merged)": 2}
    assert report.dropped == {"keypoints: Ground Truth has no keypoint job output": 1,
                              "crowd flag: Ground Truth manifests have no crowd flag": 1}
    (back,) = list(sagemaker.read(out))
    assert back.split is None  # a single manifest is not a split
    assert [(a.label, a.geometry, a.source) for a in back.annotations if isinstance(a.geometry, Box)] == [
        ("p", Box(0, 0, 4, 3), Source.MODEL), ("b", Box(0, 0, 1, 1), Source.MODEL)]
    (cell,) = [a for a in back.annotations if a.label == "cell"]
    assert isinstance(cell.geometry, Mask) and cell.geometry.area == 40


def test_bad_input_names_line(manifest: Path) -> None:
    lines = manifest.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["bounding-box-attribute-name"]["annotations"][1]["class_id"] = 9
    lines[0] = json.dumps(bad)
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as e:
        list(sagemaker.read(manifest))
    assert "output.manifest" in str(e.value) and "line 1 `bounding-box-attribute-name` annotations[1]" in str(e.value)
    lines[0] = lines[0][:-5]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"output.manifest \(line 1\): malformed JSON"):
        list(sagemaker.read(manifest))


# t04glovern/aws-ground-truth-cat-labels output.manifest @ 6d2f6d12, the whole file verbatim: a real Ground Truth
# bounding-box job's output (label attribute "cat-ground-truth", 2019-01-29), its first image with no box
CAT_MANIFEST = (
    '{"source-ref":"s3://devopstar-ground-truth-input/input-images/0001.jpg","cat-ground-truth":{"annotations":[],"image_size":[{"width":601,"depth":3,"height":453}]},"cat-ground-truth-metadata":{"job-name":"labeling-job/cat-ground-truth","class-map":{},"human-annotated":"yes","objects":[],"creation-date":"2019-01-29T13:29:11.798957","type":"groundtruth/object-detection"}}\n'  # noqa: E501
    '{"source-ref":"s3://devopstar-ground-truth-input/input-images/0002.jpg","cat-ground-truth":{"annotations":[{"class_id":0,"width":164,"top":165,"height":157,"left":237}],"image_size":[{"width":601,"depth":3,"height":453}]},"cat-ground-truth-metadata":{"job-name":"labeling-job/cat-ground-truth","class-map":{"0":"Cat"},"human-annotated":"yes","objects":[{"confidence":0.09}],"creation-date":"2019-01-29T13:29:11.847049","type":"groundtruth/object-detection"}}\n'  # noqa: E501
    '{"source-ref":"s3://devopstar-ground-truth-input/input-images/0003.jpg","cat-ground-truth":{"annotations":[{"class_id":0,"width":284,"top":162,"height":205,"left":239},{"class_id":0,"width":166,"top":107,"height":124,"left":221}],"image_size":[{"width":601,"depth":3,"height":453}]},"cat-ground-truth-metadata":{"job-name":"labeling-job/cat-ground-truth","class-map":{"0":"Cat"},"human-annotated":"yes","objects":[{"confidence":0.09},{"confidence":0.09}],"creation-date":"2019-01-29T13:31:14.845709","type":"groundtruth/object-detection"}}\n'  # noqa: E501
    '{"source-ref":"s3://devopstar-ground-truth-input/input-images/0004.jpg","cat-ground-truth":{"annotations":[{"class_id":0,"width":356,"top":56,"height":397,"left":104}],"image_size":[{"width":601,"depth":3,"height":453}]},"cat-ground-truth-metadata":{"job-name":"labeling-job/cat-ground-truth","class-map":{"0":"Cat"},"human-annotated":"yes","objects":[{"confidence":0.09}],"creation-date":"2019-01-29T13:31:14.900092","type":"groundtruth/object-detection"}}\n'  # noqa: E501
)


def test_real_ground_truth_manifest_agrees_with_the_aws_tutorial_parse(tmp_path: Path) -> None:
    manifest = tmp_path / "output.manifest"
    manifest.write_text(CAT_MANIFEST, encoding="utf-8")
    assert detect(tmp_path) == "sagemaker"
    reader = sagemaker.read(manifest)
    samples = list(reader)
    theirs = _aws_boxes(manifest)
    assert theirs == [
        ("s3://devopstar-ground-truth-input/input-images/0001.jpg", (601, 453), [], True),
        ("s3://devopstar-ground-truth-input/input-images/0002.jpg", (601, 453),
         [("Cat", (237, 165, 401, 322), 0.09)], True),
        ("s3://devopstar-ground-truth-input/input-images/0003.jpg", (601, 453),
         [("Cat", (239, 162, 523, 367), 0.09), ("Cat", (221, 107, 387, 231), 0.09)], True),
        ("s3://devopstar-ground-truth-input/input-images/0004.jpg", (601, 453),
         [("Cat", (104, 56, 460, 453), 0.09)], True)]
    assert _our_boxes(samples) == theirs[1:]
    assert [(s.image.file_name, s.state) for s in samples] == [
        ("0001.jpg", LabelState.NULL), ("0002.jpg", LabelState.ANNOTATED), ("0003.jpg", LabelState.ANNOTATED),
        ("0004.jpg", LabelState.ANNOTATED)]
    assert [c.name for c in reader.classes] == ["Cat"]
    assert all(a.source is Source.HUMAN for s in samples for a in s.annotations)
