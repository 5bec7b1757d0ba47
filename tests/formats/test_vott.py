r"""VoTT JSON and CSV exports.

Every fixture here is laid out as VoTT's own exporters write it (issue 12: "follow the tool's source file that
writes the format"), at these commits of https://github.com/microsoft/VoTT :

- src/providers/export/vottJson.ts @ 1c20bfe38a11bd0651ecd8f9882a7c9d0f765994 — `{...project}` less
  sourceConnection / targetConnection / exportFormat, `assets` = lodash keyBy(asset metadata, asset.id), written with
  `JSON.stringify(_, null, 4)` to `vott-json-export/${project.name.replace(" ", "-")}-export.json` (a string
  `replace`: the first space only), images copied beside it as `asset.name` when includeImages;
- src/common/constants.ts @ 0238f2b7ad38f7ee3c7978ac6475ccd993b0d1a3 — exportFileExtension "-export.json";
- src/providers/export/csv.ts @ 664e3f60dccd5ebad2483af40a6be518840e6fd2 — one row per region *and tag*
  (`region.tags.forEach`): image = asset.name, xmin = left, ymin = top, xmax = left + width, ymax = top + height,
  label = tag; json2csv `Parser({fields: [image, xmin, ymin, xmax, ymax, label]})`; file
  `vott-csv-export/${project.name.replace(/\s/g, "-")}-export.csv` (every space);
- src/providers/export/exportProvider.ts @ 5a248eb113d6fcd53796bdfad2ccae97ba912030 — getAssetsForExport: assets
  of the chosen state (all / visited / tagged), video roots left out, each as its IAssetMetadata {asset, regions,
  version};
- json2csv, pinned ^4.5.0 in VoTT's package.json @ 54473577f86acec944c219283c6ef6673b251d65: zemirco/json2csv
  lib/JSON2CSVBase.js @ 01687903d9d681801b0779bc4ee68858f02ef4c5 — eol os.EOL (CRLF on Windows, no newline after
  the last row), strings JSON.stringify'd with `\"` turned into `""`, numbers bare (JS Number formatting).

Real values: the regions of `test_real_vott_asset_*` are VoTT 2.1.0's own output committed in
SI-Aizu/vott-tutorial @ 6c77a3d34d93f530f14446d090c192f2c324b079
(sample_existing_project/target/3cf00e96bdd8f2b89553fe2f9a93b283-asset.json and sample_project.vott).
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


def _js_number(v: float) -> str:
    """A JS Number as JSON.stringify / json2csv print it: shortest round trip (Python's repr), integers bare."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _json2csv(rows: list[tuple[object, ...]], eol: str = "\r\n") -> str:
    """json2csv 4.x `Parser.parse` with VoTT's fields: header and strings JSON.stringify'd (`\\"` → `""`), numbers bare,
    rows joined by os.EOL (VoTT is mostly run on Windows: CRLF), nothing after the last row."""
    def cell(v: object) -> str:
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False).replace('\\"', '""')
        return _js_number(float(v))  # type: ignore[arg-type]
    lines = ['"image","xmin","ymin","xmax","ymax","label"'] + [",".join(cell(v) for v in row) for row in rows]
    return eol.join(lines)


def _csv_ts_rows(metadata: list[dict]) -> list[tuple[object, ...]]:
    """csv.ts `export()`: a row per region per tag, the box from `boundingBox` (xmax = left + width)."""
    return [(m["asset"]["name"], r["boundingBox"]["left"], r["boundingBox"]["top"],
             r["boundingBox"]["left"] + r["boundingBox"]["width"], r["boundingBox"]["top"] + r["boundingBox"]["height"], t)
            for m in metadata for r in m["regions"] for t in r["tags"]]


def _vott_json_ts(project: dict, metadata: list[dict]) -> tuple[str, str]:
    """vottJson.ts `export()`: (file name, text) — the project less its connections and export format, the assets
    keyed by id, JSON.stringify(_, null, 4)."""
    doc = {k: v for k, v in project.items() if k not in ("sourceConnection", "targetConnection", "exportFormat")}
    doc["assets"] = {m["asset"]["id"]: m for m in metadata}
    return project["name"].replace(" ", "-", 1) + "-export.json", json.dumps(doc, indent=4, ensure_ascii=False)


# a project as VoTT 2.2 saves it (<name>.vott: connections and export format encrypted), and its assets' metadata
PROJECT = {
    "name": "pets",
    "securityToken": "pets Token",
    "sourceConnection": {"name": "src", "providerType": "localFileSystemProxy", "providerOptions": {"encrypted": "e30="},
                         "id": "s1"},
    "targetConnection": {"name": "dst", "providerType": "localFileSystemProxy", "providerOptions": {"encrypted": "e30="},
                         "id": "t1"},
    "videoSettings": {"frameExtractionRate": 15},
    "tags": [{"name": "cat", "color": "#5db300"}, {"name": "dog", "color": "#e81123"}, {"name": "cute", "color": "#6917aa"}],
    "id": "kBmGqQ9Mp",
    "activeLearningSettings": {"autoDetect": False, "predictTag": True, "modelPathType": "coco"},
    "exportFormat": {"providerType": "vottJson", "providerOptions": {"encrypted": "e30="}},
    "version": "2.2.0",
    "lastVisitedAssetId": "a2",
    "assets": {},
}
ASSETS = [
    _asset("a1", "one.jpg", 2, [
        {"id": "Xy1", "type": "RECTANGLE", "tags": ["cat", "cute"],
         "boundingBox": {"height": 200.5, "width": 100, "left": 10.25, "top": 20},
         "points": [{"x": 10.25, "y": 20}, {"x": 110.25, "y": 20}, {"x": 110.25, "y": 220.5}, {"x": 10.25, "y": 220.5}]},
        {"id": "Xy2", "type": "POLYGON", "tags": ["dog"],
         "boundingBox": {"height": 40, "width": 50, "left": 300, "top": 100},
         "points": [{"x": 300, "y": 100}, {"x": 350, "y": 120}, {"x": 320, "y": 140}]},
        {"id": "Xy3", "type": "POINT", "tags": ["dog"],
         "boundingBox": {"height": 0, "width": 0, "left": 5, "top": 6}, "points": [{"x": 5, "y": 6}]},
    ]),
    _asset("a2", "two.jpg", 1, []),
    _asset("a3", "three.jpg", 0, []),
]
EXPORT_NAME, EXPORT_TEXT = _vott_json_ts(PROJECT, ASSETS)
EXPORT = json.loads(EXPORT_TEXT)

# csv.ts on the same assets: the two-tag region is two rows, the polygon and the point their bounding boxes
CSV = _json2csv(_csv_ts_rows(ASSETS))


@pytest.fixture()
def json_export(tmp_path: Path) -> Path:
    folder = tmp_path / "proj" / "vott-json-export"
    folder.mkdir(parents=True)
    for name in ("one.jpg", "two.jpg", "three.jpg"):
        Image.new("RGB", (640, 480)).save(folder / name)
    assert EXPORT_NAME == "pets-export.json" and list(EXPORT)[-1] == "assets" and "exportFormat" not in EXPORT
    (folder / EXPORT_NAME).write_text(EXPORT_TEXT, encoding="utf-8")
    return tmp_path / "proj"


@pytest.fixture()
def csv_export(tmp_path: Path) -> Path:
    folder = tmp_path / "proj" / "vott-csv-export"
    folder.mkdir(parents=True)
    for name in ("one.jpg", "untagged.jpg"):
        Image.new("RGB", (640, 480)).save(folder / name)
    assert CSV.count("\r\n") == 4 and not CSV.endswith("\n")  # header + 4 rows, no newline after the last
    (folder / "pets-export.csv").write_bytes(CSV.encode())
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
                               Annotation("dog", Box(300, 100, 350, 140)),
                               Annotation("dog", Box(5, 6, 5, 6)))  # csv.ts writes a POINT region's 0x0 box
    assert untagged.image.file_name == "untagged.jpg" and untagged.state is LabelState.NULL
    out = tmp_path / "out"
    report = vott_csv.write([one, untagged], out)
    assert dict(report.annotations) == {"box": 4} and not report.converted and not report.dropped
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


def test_csv_one_export_per_split_reads_every_file(tmp_path: Path) -> None:
    """A folder with several `<name>-export.csv` (issue 12, category 3): each file is read, split by its name;
    before, only the first was, its boxes lost and the other split's images read as labelled-empty. VoTT's csv.ts
    writes one `<project>-export.csv` per project: several come from several projects (one per split) exported to
    one target folder."""
    folder = tmp_path / "proj" / "vott-csv-export"
    folder.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg", "untagged.jpg"):
        Image.new("RGB", (640, 480)).save(folder / name)
    (folder / "train-export.csv").write_text(_json2csv([("a.jpg", 1, 2, 30, 40, "cat")]))
    (folder / "valid-export.csv").write_text(_json2csv([("b.jpg", 5, 5, 50, 50, "dog"), ("b.jpg", 60, 60, 90, 90, "cat"),
                                                        ("c.jpg", 10, 10, 20, 20, "dog")]))
    assert detect(tmp_path / "proj") == "vott_csv"
    reader = vott_csv.read(tmp_path / "proj")
    got = [(s.image.file_name, s.split, s.state, [a.label for a in s.annotations]) for s in reader]
    assert got == [("a.jpg", "train", LabelState.ANNOTATED, ["cat"]),
                   ("b.jpg", "valid", LabelState.ANNOTATED, ["dog", "cat"]),
                   ("c.jpg", "valid", LabelState.ANNOTATED, ["dog"]),
                   ("untagged.jpg", None, LabelState.NULL, [])]
    assert reader.classes.names == ["cat", "dog"]
    (folder / "valid-export.csv").write_text(_json2csv([("a.jpg", 5, 5, 50, 50, "dog")]))
    with pytest.raises(FormatError) as e:
        list(vott_csv.read(tmp_path / "proj"))
    assert e.value.path == str(folder / "valid-export.csv") and "'a.jpg' has rows here and in train-export.csv" in \
        e.value.message


# ------------------------------------------------------------------- VoTT's own output (SI-Aizu/vott-tutorial)

# sample_existing_project/target/sample_project.vott @ 6c77a3d3 (connections/export format: encrypted, dropped by
# vottJson.ts anyway) and 3cf00e96bdd8f2b89553fe2f9a93b283-asset.json @ 6c77a3d3, its first two regions verbatim
REAL_PROJECT = {
    "name": "sample_project", "securityToken": "Sample project Token",
    "sourceConnection": {"name": "sample project source", "providerType": "localFileSystemProxy",
                         "providerOptions": {"encrypted": "..."}, "id": "fC8rVp9DF"},
    "targetConnection": {"name": "sample project target", "providerType": "localFileSystemProxy",
                         "providerOptions": {"encrypted": "..."}, "id": "nHwUVJpsD"},
    "videoSettings": {"frameExtractionRate": 15}, "tags": [{"name": "car", "color": "#5db300"}], "id": "E7ZCvKcpf",
    "activeLearningSettings": {"modelPathType": "coco", "autoDetect": False, "predictTag": True},
    "exportFormat": {"providerType": "tensorFlowRecords", "providerOptions": {"encrypted": "..."}},
    "version": "2.1.0", "lastVisitedAssetId": "8d3388b6ed24eb6981a237ff1f95f0ff", "assets": {},
}
REAL_ASSET = {
    "asset": {"format": "jpg", "id": "3cf00e96bdd8f2b89553fe2f9a93b283", "name": "car_1.jpg",
              "path": "file:/Users/iris/Documents/repos/github.com/SI-Aizu/vott-tutorial/sample_existing_project/source/car_1.jpg",
              "size": {"width": 1484, "height": 965}, "state": 2, "type": 1},
    "regions": [
        {"id": "Yh2yWXaTx", "type": "RECTANGLE", "tags": ["car"],
         "boundingBox": {"height": 176.82398110741445, "width": 211.04494360321385, "left": 377.99351050679854,
                         "top": 703.7557182747148},
         "points": [{"x": 377.99351050679854, "y": 703.7557182747148}, {"x": 589.0384541100124, "y": 703.7557182747148},
                    {"x": 589.0384541100124, "y": 880.5796993821293}, {"x": 377.99351050679854, "y": 880.5796993821293}]},
        {"id": "V6vzwY6Jq", "type": "RECTANGLE", "tags": ["car"],
         "boundingBox": {"height": 168.18129158745248, "width": 189.41235321384426, "left": 500.1291525030902,
                         "top": 580.3501514971483},
         "points": [{"x": 500.1291525030902, "y": 580.3501514971483}, {"x": 689.5415057169345, "y": 580.3501514971483},
                    {"x": 689.5415057169345, "y": 748.5314430846007}, {"x": 500.1291525030902, "y": 748.5314430846007}]},
    ],
    "version": "2.1.0",
}
REAL_BOXES = (Annotation("car", Box(377.99351050679854, 703.7557182747148, 377.99351050679854 + 211.04494360321385,
                                    703.7557182747148 + 176.82398110741445)),
              Annotation("car", Box(500.1291525030902, 580.3501514971483, 500.1291525030902 + 189.41235321384426,
                                    580.3501514971483 + 168.18129158745248)))


def test_real_vott_asset_as_json_export(tmp_path: Path) -> None:
    """VoTT 2.1.0's own regions, exported as vottJson.ts does (images beside, includeImages) — read exactly."""
    name, text = _vott_json_ts(REAL_PROJECT, [REAL_ASSET])
    folder = tmp_path / "target" / "vott-json-export"
    folder.mkdir(parents=True)
    Image.new("RGB", (1484, 965)).save(folder / "car_1.jpg")
    (folder / name).write_text(text, encoding="utf-8")
    assert name == "sample_project-export.json" and detect(tmp_path / "target") == "vott"
    reader = vott.read(tmp_path / "target")
    (car,) = list(reader)
    assert [(c.id, c.name, c.color) for c in reader.classes] == [(0, "car", "#5db300")]
    assert car.image.file_name == "car_1.jpg" and car.image.size == (1484, 965) and car.state is LabelState.ANNOTATED
    assert car.annotations == REAL_BOXES
    assert car.image.metadata == {"vott_id": "3cf00e96bdd8f2b89553fe2f9a93b283",
                                  "vott_path": REAL_ASSET["asset"]["path"]}  # type: ignore[index]


def test_real_vott_asset_as_csv_export(tmp_path: Path) -> None:
    """The same regions through csv.ts and json2csv (CRLF, no newline at the end, JS numbers): the same boxes."""
    text = _json2csv(_csv_ts_rows([REAL_ASSET]))
    assert text.split("\r\n")[1] == '"car_1.jpg",377.99351050679854,703.7557182747148,589.0384541100124,880.5796993821293,"car"'
    folder = tmp_path / "target" / "vott-csv-export"
    folder.mkdir(parents=True)
    Image.new("RGB", (1484, 965)).save(folder / "car_1.jpg")
    (folder / "sample_project-export.csv").write_bytes(text.encode())
    assert detect(tmp_path / "target") == "vott_csv"
    (car,) = list(vott_csv.read(tmp_path / "target"))
    assert car.image.file_name == "car_1.jpg" and car.annotations == REAL_BOXES


def test_json_export_with_a_hundred_tags_is_detected(tmp_path: Path) -> None:
    """`assets` comes after every tag (JSON.stringify, 4 spaces: ~75 bytes a tag); with 120 tags it is past the
    8 KiB head that detection reads. Before, such an export was "not a VoTT project export" and no format claimed
    the folder; the project keys before the tags (securityToken, videoSettings) now decide."""
    project = {**PROJECT, "name": "many tags", "tags": [{"name": f"tag{i:03d}", "color": "#5db300"} for i in range(120)]}
    name, text = _vott_json_ts(project, ASSETS[1:2])
    assert name == "many-tags-export.json" and text.index('"assets"') > 8192
    folder = tmp_path / "proj" / "vott-json-export"
    folder.mkdir(parents=True)
    (folder / name).write_text(text, encoding="utf-8")
    assert vott.detect(tmp_path / "proj").score == 0.9 and detect(tmp_path / "proj") == "vott"
    reader = vott.read(tmp_path / "proj")
    assert len(reader.classes) == 120 and [s.image.file_name for s in reader] == ["two.jpg"]


def test_project_name_with_spaces_file_names(tmp_path: Path) -> None:
    """vottJson.ts replaces the first space (`replace(" ", "-")`), csv.ts every one (`replace(/\\s/g, "-")`)."""
    name, text = _vott_json_ts({**PROJECT, "name": "my pet photos"}, ASSETS[:1])
    assert name == "my-pet photos-export.json"
    (tmp_path / "j" / "vott-json-export").mkdir(parents=True)
    (tmp_path / "j" / "vott-json-export" / name).write_text(text, encoding="utf-8")
    assert detect(tmp_path / "j") == "vott" and len(list(vott.read(tmp_path / "j"))[0].annotations) == 4
    (tmp_path / "c" / "vott-csv-export").mkdir(parents=True)
    (tmp_path / "c" / "vott-csv-export" / "my-pet-photos-export.csv").write_bytes(CSV.encode())
    assert detect(tmp_path / "c") == "vott_csv" and len(list(vott_csv.read(tmp_path / "c"))[0].annotations) == 4


# ---------------------------------------------------------------- video frames (issue 12)
# microsoft/VoTT, how a tagged video frame is made and exported:
# - src/react/components/common/videoAsset/videoAsset.tsx `raiseChildAssetSelected` (the stored copies agree):
#   createAssetFromFilePath(`${parent.path}#t=${currentTime}`), type = AssetType.VideoFrame (3,
#   src/models/applicationState.ts), parent = the video asset, timestamp = currentTime, size = the video's;
# - src/services/assetService.ts @ c2e14bacea450e17c5474a52d0556a2aeb0196a4 `createAssetFromFilePath`: name = the
#   path's last part (`video.mp4#t=2.5`), format = the extension before `#` (`mp4`);
# - src/common/htmlFileReader.ts @ 008c7f516e8476c6822134977904819aaeeefe32 `getAssetBlob` -> `getAssetFrameImage`:
#   `asset.name += ".jpg"` unless it ends with .jpg, then the frame drawn on a canvas;
# - src/providers/export/vottJson.ts @ 1c20bfe3 (above): with includeImages each asset's blob is written to
#   `vott-json-export/${asset.name}` *before* the JSON, whose asset objects are the same (so their name ends .jpg);
#   csv.ts @ d8eb338fbff888ef4796b2dea0dd1225cd2adf7a: getAssetArray (same renaming) before `image: asset.name`.
# Without includeImages neither writes the frame and the name stays `video.mp4#t=2.5`.

VIDEO = {"format": "mp4", "id": "v1", "name": "video.mp4", "path": "https://cams.example/videos/video.mp4",
         "size": {"width": 1280, "height": 720}, "state": 2, "type": 2}
FRAME_REGION = {"id": "F1", "type": "RECTANGLE", "tags": ["cat"],
                "boundingBox": {"height": 120.25, "width": 200, "left": 100.5, "top": 50},
                "points": [{"x": 100.5, "y": 50}, {"x": 300.5, "y": 50}, {"x": 300.5, "y": 170.25},
                           {"x": 100.5, "y": 170.25}]}


def _frame(include_images: bool) -> dict[str, object]:
    name = "video.mp4#t=2.5" + (".jpg" if include_images else "")
    return {"asset": {"format": "mp4", "id": "f25", "name": name, "path": VIDEO["path"] + "#t=2.5",
                      "size": {"width": 1280, "height": 720}, "state": 2, "type": 3, "parent": VIDEO,
                      "timestamp": 2.5}, "regions": [FRAME_REGION], "version": "2.2.0"}


def _frame_json_export(root: Path, include_images: bool) -> Path:
    folder = root / "vott-json-export"
    folder.mkdir(parents=True)
    Image.new("RGB", (640, 480)).save(folder / "one.jpg")
    if include_images:
        Image.new("RGB", (1280, 720), (9, 9, 9)).save(folder / "video.mp4#t=2.5.jpg", format="PNG")  # canvas.toBlob
    (folder / "video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # the video beside: never read as the frame
    name, text = _vott_json_ts(PROJECT, [ASSETS[0], _frame(include_images)])
    (folder / name).write_text(text, encoding="utf-8")
    return root


def test_json_video_frame_reads_the_jpg_vott_wrote(tmp_path: Path) -> None:
    root = _frame_json_export(tmp_path / "proj", include_images=True)
    _, frame = list(vott.read(root))
    assert (frame.image.file_name, frame.image.size, frame.state) == ("video.mp4#t=2.5.jpg", (1280, 720),
                                                                      LabelState.ANNOTATED)
    assert frame.image.path == str(root / "vott-json-export" / "video.mp4#t=2.5.jpg")
    assert frame.image.metadata["vott_timestamp"] == 2.5
    assert frame.annotations == (Annotation("cat", Box(100.5, 50, 300.5, 170.25)),)


def test_json_video_frame_not_exported_is_refused_naming_the_asset(tmp_path: Path) -> None:
    from visionloop.formats.base import images_optional, quarantine_reads

    root = _frame_json_export(tmp_path / "proj", include_images=False)
    with pytest.raises(FormatError) as e:
        list(vott.read(root))
    assert (e.value.where, e.value.message) == (
        "assets['f25']", "video frame 'video.mp4#t=2.5' (video.mp4 at 2.5 s): its image 'video.mp4#t=2.5.jpg' is "
                         "not beside the export")
    assert e.value.hint.startswith('export again from VoTT with "Include images" on')
    assert e.value.hint.endswith("or pass --images none to convert the annotations alone")
    # on import: the frame is quarantined, the image asset lands
    errors: list = []
    with quarantine_reads(errors.append):
        assert [s.image.file_name for s in vott.read(root)] == ["one.jpg"]
    assert [err.where for err in errors] == ["assets['f25']"]
    # --images none: the JSON gives the frame's size, its boxes convert without a file
    with images_optional():
        _, frame = list(vott.read(root))
    assert (frame.image.file_name, frame.image.path, frame.image.size) == ("video.mp4#t=2.5.jpg", None, (1280, 720))
    assert frame.annotations == (Annotation("cat", Box(100.5, 50, 300.5, 170.25)),)


def test_csv_video_frame_rows(tmp_path: Path) -> None:
    folder = tmp_path / "proj" / "vott-csv-export"
    folder.mkdir(parents=True)
    Image.new("RGB", (1280, 720)).save(folder / "video.mp4#t=2.5.jpg", format="PNG")
    rows = _csv_ts_rows([ASSETS[0], _frame(include_images=True)])
    (folder / "pets-export.csv").write_bytes(_json2csv(rows).encode())
    samples = {s.image.file_name: s for s in vott_csv.read(tmp_path / "proj")}
    assert sorted(samples) == ["one.jpg", "video.mp4#t=2.5.jpg"]
    frame = samples["video.mp4#t=2.5.jpg"]
    assert frame.image.path == str(folder / "video.mp4#t=2.5.jpg")
    assert frame.annotations == (Annotation("cat", Box(100.5, 50, 300.5, 170.25)),)
    # exported without images: the row names `video.mp4#t=2.5` and nothing is beside the CSV
    (folder / "video.mp4#t=2.5.jpg").unlink()
    rows = _csv_ts_rows([ASSETS[0], _frame(include_images=False)])
    assert rows[-1] == ("video.mp4#t=2.5", 100.5, 50, 300.5, 170.25, "cat")
    (folder / "pets-export.csv").write_bytes(_json2csv(rows).encode())
    with pytest.raises(FormatError) as e:
        list(vott_csv.read(tmp_path / "proj"))
    assert (e.value.where, e.value.message) == (
        "line 6", "video frame 'video.mp4#t=2.5' (video.mp4 at 2.5 s): its image 'video.mp4#t=2.5.jpg' is not "
                  "beside the export")
