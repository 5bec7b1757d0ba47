"""Labelbox NDJSON export (v2).

Fixture laid out as Labelbox exports an image project, following
https://docs.labelbox.com/reference/label-export and the export v2 image fixture of Labelbox's own
SDK tests (labelbox-python `expected_export_v2_image`: closed polygons, `name`/`value` on every
feature, checklist and text classifications), with a nested radio classification on a box and a
segmentation mask (a URL) added.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Caption, Keypoints, Label, Polygon, Polyline
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, labelbox

OBJECTS = [
    {"feature_id": "clb1", "feature_schema_id": "s1", "name": "polygon", "value": "polygon",
     "annotation_kind": "ImagePolygon", "classifications": [],
     "polygon": [{"x": 147.692, "y": 118.154}, {"x": 142.769, "y": 104.923}, {"x": 57.846, "y": 118.769},
                 {"x": 28.308, "y": 169.846}, {"x": 147.692, "y": 118.154}]},
    {"feature_id": "clb2", "feature_schema_id": "s2", "name": "bbox", "value": "bbox",
     "annotation_kind": "ImageBoundingBox",
     "classifications": [{"feature_id": "c1", "name": "occlusion", "value": "occlusion",
                          "radio_answer": {"feature_id": "a1", "name": "partial", "value": "partial",
                                           "classifications": []}},
                         {"name": "damage", "value": "damage",
                          "checklist_answers": [{"name": "dented", "value": "dented", "classifications": []},
                                                {"name": "scratched", "value": "scratched", "classifications": []}]}],
     "bounding_box": {"top": 48.0, "left": 58.0, "height": 65.0, "width": 12.0}},
    {"feature_id": "clb3", "feature_schema_id": "s3", "name": "polyline", "value": "polyline",
     "annotation_kind": "ImagePolyline", "classifications": [],
     "line": [{"x": 147.692, "y": 118.154}, {"x": 150.692, "y": 160.154}]},
    {"feature_id": "clb4", "feature_schema_id": "s4", "name": "point", "value": "point",
     "annotation_kind": "ImagePoint", "classifications": [], "point": {"x": 10.5, "y": 20.25}},
    {"feature_id": "clb5", "feature_schema_id": "s5", "name": "mask", "value": "mask",
     "annotation_kind": "ImageSegmentationMask", "classifications": [],
     "mask": {"url": "https://api.labelbox.com/api/v1/projects/p/annotations/clb5/index/1/mask"}},
]
CLASSIFICATIONS = [
    {"name": "checklist", "value": "checklist",
     "checklist_answers": [{"name": "first_checklist_answer", "value": "first_checklist_answer", "classifications": []},
                           {"name": "second_checklist_answer", "value": "second_checklist_answer",
                            "classifications": []}]},
    {"name": "text", "value": "text", "text_answer": {"content": "free form text..."}},
]


def _row(external_id: str, labels: list[dict[str, object]] | None) -> dict[str, object]:
    row: dict[str, object] = {
        "data_row": {"id": f"dr-{external_id}", "global_key": None, "external_id": external_id,
                     "row_data": f"https://storage.labelbox.com/cl123/{external_id}",
                     "details": {"dataset_id": "ds1", "dataset_name": "pets"}},
        "media_attributes": {"height": 240, "width": 320, "mime_type": "image/jpeg", "exif_rotation": "1"},
        "attachments": [], "metadata_fields": [],
        "projects": {},
    }
    if labels is not None:
        row["projects"] = {"clproject1": {"name": "Pets", "labels": labels,
                                          "project_details": {"workflow_status": "DONE"}}}
    return row


def _label(objects: list[object], classifications: list[object]) -> dict[str, object]:
    return {"label_kind": "Default", "version": 1, "id": "lbl", "label_details": {"created_by": "me@example.com"},
            "annotations": {"objects": objects, "classifications": classifications, "relationships": []}}


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    root = tmp_path / "lb"
    root.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (320, 240)).save(root / name)
    rows = [_row("a.jpg", [_label(OBJECTS, CLASSIFICATIONS)]), _row("b.jpg", [_label([], [])]), _row("c.jpg", None)]
    f = root / "export-result.ndjson"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_detect(export: Path) -> None:
    assert labelbox.detect(export).score >= 0.9 and detect(export.parent) == "labelbox"


def test_read_exact(export: Path) -> None:
    reader = labelbox.read(export)
    a, b, c = list(reader)
    assert a.image.file_name == "a.jpg" and a.image.size == (320, 240) and a.image.path == str(export.parent / "a.jpg")
    assert a.image.metadata == {"labelbox_row_data": "https://storage.labelbox.com/cl123/a.jpg",
                                "labelbox_id": "dr-a.jpg"}
    assert a.annotations == (
        Annotation("polygon", Polygon(((147.692, 118.154, 142.769, 104.923, 57.846, 118.769, 28.308, 169.846),))),
        Annotation("bbox", Box(58, 48, 70, 113), attributes={"occlusion": "partial", "damage": ["dented", "scratched"]}),
        Annotation("polyline", Polyline((147.692, 118.154, 150.692, 160.154))),
        Annotation("point", Keypoints((10.5, 20.25, 2))),
        Annotation("first_checklist_answer", Label(), attributes={"question": "checklist"}),
        Annotation("second_checklist_answer", Label(), attributes={"question": "checklist"}),
        Annotation("", Caption("free form text..."), attributes={"question": "text"}),  # a free-text answer
    )  # the mask (behind a URL) is skipped
    assert reader.classes.names == ["polygon", "bbox", "polyline", "point", "first_checklist_answer",
                                    "second_checklist_answer"]
    assert b.state is LabelState.NULL and c.state is LabelState.MISSING


def test_roundtrip(export: Path, tmp_path: Path) -> None:
    first = list(labelbox.read(export))
    out = tmp_path / "out"
    report = labelbox.write(first, out)
    assert report.images == 3 and report.files == 3
    assert dict(report.annotations) == {"polygon": 1, "box": 1, "keypoints": 1, "polyline": 1, "label": 2, "caption": 1}
    assert not report.converted and not report.dropped
    back = list(labelbox.read(out))
    assert [s.image.file_name for s in back] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [s.state for s in first]
    row0 = json.loads((out / "export.ndjson").read_text().splitlines()[0])
    assert {"name": "text", "value": "text", "text_answer": {"content": "free form text..."}} in \
        row0["projects"]["visionloop"]["labels"][0]["annotations"]["classifications"]
    row = json.loads((out / "export.ndjson").read_text().splitlines()[0])
    assert row["data_row"]["row_data"] == "https://storage.labelbox.com/cl123/a.jpg"
    poly = row["projects"]["visionloop"]["labels"][0]["annotations"]["objects"][0]["polygon"]
    assert poly[0] == poly[-1]  # closed, as Labelbox exports it


def test_write_conversions(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    ref = ImageRef("a.png", width=10, height=10, path=str(tmp_path / "a.png"))
    sample = Sample(ref, (Annotation("b", Box(0, 0, 2, 2), attributes={"n": 3}, confidence=0.2),
                          Annotation("k", Keypoints((1, 1, 2, 2, 2, 2)))), split="val")
    report = labelbox.write([sample], tmp_path / "o")
    assert report.converted == {"attribute int -> text": 1, "keypoints (2 points) -> 2 points": 1}
    assert report.dropped == {"split: a Labelbox export has no splits": 1,
                              "confidence: Labelbox exports hold no score": 1}
    (back,) = list(labelbox.read(tmp_path / "o"))
    assert back.annotations[0].attributes == {"n": "3"}


def test_bad_input_names_line_and_object(export: Path) -> None:
    lines = export.read_text().splitlines()
    row = json.loads(lines[0])
    row["projects"]["clproject1"]["labels"][0]["annotations"]["objects"][1]["bounding_box"]["width"] = "wide"
    lines[0] = json.dumps(row)
    export.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as e:
        list(labelbox.read(export))
    assert "export-result.ndjson" in str(e.value)
    assert "line 1 projects['clproject1'] labels[0] objects[1] (ImageBoundingBox 'bbox')" in str(e.value)
