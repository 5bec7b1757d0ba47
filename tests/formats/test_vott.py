"""VoTT JSON and CSV exports.

Fixtures laid out as VoTT 2.2 exports them (https://github.com/microsoft/VoTT : README "Export
Labels"; the asset/region model in src/models/applicationState.ts; the JSON exporter writes
vott-json-export/<project>-export.json and the CSV exporter vott-csv-export/<project>-export.csv
with quoted json2csv cells, both with the images copied beside the file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Polygon, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, vott, vott_csv


def _asset(aid: str, name: str, state: int, regions: list[dict[str, object]]) -> dict[str, object]:
    return {"asset": {"format": "jpg", "id": aid, "name": name, "path": f"file:C:/Users/me/pics/{name}",
                      "size": {"width": 640, "height": 480}, "state": state, "type": 1},
            "regions": regions, "version": "2.2.0"}


EXPORT = {
    "name": "pets",
    "securityToken": "pets Token",
    "videoSettings": {"frameExtractionRate": 15},
    "tags": [{"name": "cat", "color": "#5db300"}, {"name": "dog", "color": "#e81123"}, {"name": "cute", "color": "#6917aa"}],
    "id": "kBmGqQ9Mp",
    "activeLearningSettings": {"autoDetect": False, "predictTag": True, "modelPathType": "coco"},
    "version": "2.2.0",
    "lastVisitedAssetId": "a2",
    "assets": {
        "a1": _asset("a1", "one.jpg", 2, [
            {"id": "Xy1", "type": "RECTANGLE", "tags": ["cat", "cute"],
             "boundingBox": {"height": 200.5, "width": 100, "left": 10.25, "top": 20},
             "points": [{"x": 10.25, "y": 20}, {"x": 110.25, "y": 20}, {"x": 110.25, "y": 220.5}, {"x": 10.25, "y": 220.5}]},
            {"id": "Xy2", "type": "POLYGON", "tags": ["dog"],
             "boundingBox": {"height": 40, "width": 50, "left": 300, "top": 100},
             "points": [{"x": 300, "y": 100}, {"x": 350, "y": 120}, {"x": 320, "y": 140}]},
            {"id": "Xy3", "type": "POINT", "tags": ["dog"],
             "boundingBox": {"height": 0, "width": 0, "left": 5, "top": 6}, "points": [{"x": 5, "y": 6}]},
        ]),
        "a2": _asset("a2", "two.jpg", 1, []),
        "a3": _asset("a3", "three.jpg", 0, []),
    },
}

CSV = ('"image","xmin","ymin","xmax","ymax","label"\n'
       '"one.jpg",10.25,20,110.25,220.5,"cat"\n'
       '"one.jpg",10.25,20,110.25,220.5,"cute"\n'
       '"one.jpg",300,100,350,140,"dog"\n')


@pytest.fixture()
def json_export(tmp_path: Path) -> Path:
    folder = tmp_path / "proj" / "vott-json-export"
    folder.mkdir(parents=True)
    for name in ("one.jpg", "two.jpg", "three.jpg"):
        Image.new("RGB", (640, 480)).save(folder / name)
    (folder / "pets-export.json").write_text(json.dumps(EXPORT, indent=2))
    return tmp_path / "proj"


@pytest.fixture()
def csv_export(tmp_path: Path) -> Path:
    folder = tmp_path / "proj" / "vott-csv-export"
    folder.mkdir(parents=True)
    for name in ("one.jpg", "untagged.jpg"):
        Image.new("RGB", (640, 480)).save(folder / name)
    (folder / "pets-export.csv").write_text(CSV)
    return tmp_path / "proj"


def test_json_detect_read_exact(json_export: Path) -> None:
    assert vott.detect(json_export).score >= 0.9 and detect(json_export) == "vott"
    assert vott_csv.detect(json_export).score == 0
    reader = vott.read(json_export)
    assert [(c.id, c.name, c.color) for c in reader.classes] == [(0, "cat", "#5db300"), (1, "dog", "#e81123"),
                                                                  (2, "cute", "#6917aa")]
    one, two, three = list(reader)
    assert one.image.file_name == "one.jpg" and one.image.size == (640, 480)
    assert one.image.path == str(json_export / "vott-json-export" / "one.jpg")
    assert one.annotations == (
        # a region with two tags is one annotation per tag (as VoTT's CSV exporter writes a row per tag), linked
        Annotation("cat", Box(10.25, 20, 110.25, 220.5), attributes={"vott_region": "Xy1"}),
        Annotation("cute", Box(10.25, 20, 110.25, 220.5), attributes={"vott_region": "Xy1"}),
        Annotation("dog", Polygon(((300, 100, 350, 120, 320, 140),))),
        Annotation("dog", Keypoints((5, 6, 2))),
    )
    assert (two.state, three.state) == (LabelState.NULL, LabelState.MISSING)


def test_json_roundtrip(json_export: Path, tmp_path: Path) -> None:
    first = list(vott.read(json_export))
    out = tmp_path / "out"
    report = vott.write(first, out, classes=vott.read(json_export).classes)
    assert report.images == 3 and report.files == 3
    assert dict(report.annotations) == {"box": 2, "polygon": 1, "keypoints": 1}
    assert not report.converted and not report.dropped
    written = json.loads((out / "vott-json-export" / "visionloop-export.json").read_text())
    regions = next(iter(written["assets"].values()))["regions"]
    assert [(r["id"], r["tags"]) for r in regions][0] == ("Xy1", ["cat", "cute"])  # one region again, as VoTT had it
    again = vott.read(out)
    back = list(again)
    assert [(c.name, c.color) for c in again.classes] == [("cat", "#5db300"), ("dog", "#e81123"), ("cute", "#6917aa")]
    assert [s.image.file_name for s in back] == ["one.jpg", "two.jpg", "three.jpg"]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [s.state for s in first]


def test_json_write_reports_losses(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    ref = ImageRef("a.png", width=10, height=10, path=str(tmp_path / "a.png"))
    sample = Sample(ref, (Annotation("x", Label()), Annotation("r", RotatedBox(5, 5, 2, 2, 45)),
                          Annotation("b", Box(0, 0, 1, 1), attributes={"occluded": True}, confidence=0.3)),
                    split="train")
    report = vott.write([sample], tmp_path / "o")
    assert report.converted == {"rotated_box -> polygon": 1}
    assert report.dropped == {"label: VoTT has no whole-image tags": 1, "split: VoTT has no splits": 1,
                              "attributes: VoTT holds tags only": 1, "confidence: VoTT has no score field": 1}


def test_csv_read_exact_and_roundtrip(csv_export: Path, tmp_path: Path) -> None:
    assert vott_csv.detect(csv_export).score >= 0.9 and detect(csv_export) == "vott_csv"
    one, untagged = list(vott_csv.read(csv_export))
    assert one.annotations == (Annotation("cat", Box(10.25, 20, 110.25, 220.5)),
                               Annotation("cute", Box(10.25, 20, 110.25, 220.5)),
                               Annotation("dog", Box(300, 100, 350, 140)))
    assert untagged.image.file_name == "untagged.jpg" and untagged.state is LabelState.NULL
    out = tmp_path / "out"
    report = vott_csv.write([one, untagged], out)
    assert dict(report.annotations) == {"box": 3} and not report.converted and not report.dropped
    text = (out / "vott-csv-export" / "visionloop-export.csv").read_text()
    assert text.splitlines()[:2] == ['"image","xmin","ymin","xmax","ymax","label"', '"one.jpg",10.25,20.0,110.25,220.5,"cat"']
    back = list(vott_csv.read(out))
    assert [(s.image.file_name, s.annotations) for s in back] == [("one.jpg", one.annotations), ("untagged.jpg", ())]


def test_json_to_csv_converts_to_boxes(json_export: Path, tmp_path: Path) -> None:
    report = vott_csv.write(vott.read(json_export), tmp_path / "c")
    # three.jpg was never visited (MISSING); beside the CSV without rows it reads back labelled empty: counted
    assert report.converted == {"polygon -> box": 1, "keypoints -> box": 1,
                                "missing -> null (an image without rows reads as labelled empty)": 1}
    assert dict(report.annotations) == {"box": 4}
    rows = (tmp_path / "c" / "vott-csv-export" / "visionloop-export.csv").read_text().splitlines()
    # the two-tag region is a row per tag, exactly as VoTT's own CSV exporter writes it (the CSV fixture above)
    assert rows[1:3] == ['"one.jpg",10.25,20.0,110.25,220.5,"cat"', '"one.jpg",10.25,20.0,110.25,220.5,"cute"']


def test_json_region_without_tag_is_counted_skipped_and_strict_refuses(json_export: Path, tmp_path: Path) -> None:
    """VoTT saves a drawn region before it is tagged (`tags: []`): it has no class. It is counted in the report's
    `skipped`, never dropped in silence; --strict refuses it with the file and region named (issue 12, cat. 3)."""
    from visionloop.formats.base import count_skips
    from visionloop.formats.convert import convert

    f = json_export / "vott-json-export" / "pets-export.json"
    doc = json.loads(f.read_text())
    doc["assets"]["a1"]["regions"].append({"id": "Xy4", "type": "RECTANGLE", "tags": [],
                                           "boundingBox": {"height": 10, "width": 10, "left": 1, "top": 1},
                                           "points": []})
    f.write_text(json.dumps(doc))
    with count_skips() as skips:
        one = list(vott.read(json_export))[0]
    assert len(one.annotations) == 4 and dict(skips) == {"region: no tag (no class)": 1}
    report = convert(json_export, tmp_path / "o", to="datumaro", images="none", workers=1)
    assert report.skipped == {"region: no tag (no class)": 1} and report.to_json()["skipped"] == dict(report.skipped)
    with pytest.raises(FormatError) as e:
        convert(json_export, tmp_path / "o2", to="datumaro", images="none", strict=True, workers=1)
    assert str(e.value).startswith(f"{f} (assets['a1'] regions[3]): region not read: no tag (no class)")
    assert not (tmp_path / "o2").exists()


def test_bad_input(json_export: Path, csv_export: Path) -> None:
    f = json_export / "vott-json-export" / "pets-export.json"
    doc = json.loads(f.read_text())
    doc["assets"]["a1"]["regions"][1]["points"] = [{"x": 1, "y": 1}, {"x": 2}]
    f.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(vott.read(json_export))
    assert "pets-export.json" in str(e.value) and "assets['a1'] regions[1]" in str(e.value)
    c = csv_export / "vott-csv-export" / "pets-export.csv"
    c.write_text(CSV.replace("300,100", "300,abc"))
    with pytest.raises(FormatError) as e:
        list(vott_csv.read(csv_export))
    assert "pets-export.csv (line 4)" in str(e.value)


def _csv_rows(rows: list[tuple[str, float, float, float, float, str]]) -> str:
    """Rows as VoTT's CSV exporter writes them (json2csv: header and strings quoted, numbers bare)."""
    lines = ['"image","xmin","ymin","xmax","ymax","label"']
    lines += [f'"{n}",{x0},{y0},{x1},{y1},"{t}"' for n, x0, y0, x1, y1, t in rows]
    return "\n".join(lines) + "\n"


def test_csv_one_export_per_split_reads_every_file(tmp_path: Path) -> None:
    """A folder with one `<name>-export.csv` per split (issue 12, category 3): each file is read, split by its
    name; before, only the first was, its boxes lost and the other split's images read as labelled-empty."""
    folder = tmp_path / "proj" / "vott-csv-export"
    folder.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg", "untagged.jpg"):
        Image.new("RGB", (640, 480)).save(folder / name)
    (folder / "train-export.csv").write_text(_csv_rows([("a.jpg", 1, 2, 30, 40, "cat")]))
    (folder / "valid-export.csv").write_text(_csv_rows([("b.jpg", 5, 5, 50, 50, "dog"), ("b.jpg", 60, 60, 90, 90, "cat"),
                                                        ("c.jpg", 10, 10, 20, 20, "dog")]))
    assert detect(tmp_path / "proj") == "vott_csv"
    reader = vott_csv.read(tmp_path / "proj")
    got = [(s.image.file_name, s.split, s.state, [a.label for a in s.annotations]) for s in reader]
    assert got == [("a.jpg", "train", LabelState.ANNOTATED, ["cat"]),
                   ("b.jpg", "valid", LabelState.ANNOTATED, ["dog", "cat"]),
                   ("c.jpg", "valid", LabelState.ANNOTATED, ["dog"]),
                   ("untagged.jpg", None, LabelState.NULL, [])]
    assert reader.classes.names == ["cat", "dog"]
    (folder / "valid-export.csv").write_text(_csv_rows([("a.jpg", 5, 5, 50, 50, "dog")]))
    with pytest.raises(FormatError) as e:
        list(vott_csv.read(tmp_path / "proj"))
    assert e.value.path == str(folder / "valid-export.csv") and "'a.jpg' has rows here and in train-export.csv" in \
        e.value.message
