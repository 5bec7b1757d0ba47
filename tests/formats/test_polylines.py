"""Polylines as the tools write them, read as `Polyline` exactly, and written back so the tools read them.

Fixtures, by source:
- Datumaro JSON and CVAT for images XML: written by datumaro 1.13's own exporters (`Dataset.export(path,
  "datumaro" | "cvat", save_media=True)`) in the test; datumaro's own import of the same folder is the oracle.
  CVAT's XML export is datumaro's CVAT exporter (cvat/apps/dataset_manager uses it).
- CVAT for video: written by our writer, read back by datumaro's CVAT importer (which reads <track>s).
- Label Studio `vectorlabels`: a region made by label-studio-sdk 2.1.2's `LabelInterface` (the VectorLabels
  control's `label()`, `Region.to_json()`), and our export validated by its `validate_annotation` against the
  config we write (the SDK lives in Label Studio's own venv, `.ci/ls-venv`, as in tests/loop; skipped without
  it); otherwise the result JSON of Label Studio's docs (docs/source/tags/vectorlabels.md, "Example results JSON
  export") and of `VectorRegion.serialize()` (web/libs/editor/src/regions/VectorRegion.jsx): vertices in percent
  chained by `prevPointId`; Bezier segments drawn as KonvaVector's `segmentsToPathData` draws them
  (components/KonvaVector/components/VectorShape.tsx).
- VoTT: a region as VoTT's model declares it (src/models/applicationState.ts: IRegion {type: "POLYLINE",
  boundingBox, points}).

Before visionloop had a Polyline these were dropped or misread: Datumaro's polyline and Label Studio's vector
results kept as opaque image metadata (no geometry, no class), CVAT's <polyline> read as keypoints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop import formats
from visionloop.core import Annotation, Box, FormatError, ImageRef, Polygon, Polyline, Sample
from visionloop.formats import labelstudio
from visionloop.formats.base import count_skips

dm = pytest.importorskip("datumaro")
from datumaro.components.annotation import Bbox, PolyLine  # noqa: E402

LS_PYTHON = Path(os.environ.get("VISIONLOOP_LABEL_STUDIO")
                 or Path(__file__).resolve().parents[2] / ".ci" / "ls-venv" / "bin" / "label-studio").parent / "python"
LINE_A = [2.0, 3.5, 20.0, 10.0, 30.25, 4.0]
LINE_B = [0.0, 39.0, 59.0, 0.0]


def _image(h: int, w: int) -> object:
    return dm.Image.from_numpy(np.full((h, w, 3), 90, np.uint8))


def _dataset():
    return dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=_image(40, 60),
                       annotations=[PolyLine(LINE_A, label=0, id=1, z_order=2), Bbox(5, 6, 10, 8, label=1, id=2),
                                    PolyLine(LINE_B, label=0, id=3)]),
        dm.DatasetItem(id="b", subset="train", media=_image(40, 60)),
    ], categories=["lane", "car"])


def _lines(sample) -> list[tuple[str, list[float]]]:
    return [(a.label, list(a.geometry.points)) for a in sample.annotations if isinstance(a.geometry, Polyline)]


@pytest.mark.parametrize(("exporter", "fmt"), [("datumaro", "datumaro"), ("cvat", "cvat")])
def test_datumaro_written_polylines_read_exactly(tmp_path: Path, exporter: str, fmt: str) -> None:
    _dataset().export(str(tmp_path / "ds"), exporter, save_media=True)
    assert formats.detect(tmp_path / "ds") == fmt
    a, b = sorted(formats.read(tmp_path / "ds"), key=lambda s: s.image.file_name)
    assert _lines(a) == [("lane", LINE_A), ("lane", LINE_B)]
    assert [(x.label, x.geometry) for x in a.annotations if isinstance(x.geometry, Box)] == [("car", Box(5, 6, 15, 14))]
    assert b.annotations == ()
    oracle = dm.Dataset.import_from(str(tmp_path / "ds"), exporter)
    theirs = [[float(v) for v in x.points] for x in oracle.get("a", "train").annotations if isinstance(x, PolyLine)]
    assert [p for _, p in _lines(a)] == theirs


@pytest.mark.parametrize("fmt", ["datumaro", "cvat", "cvat_video"])
def test_datumaro_reads_our_polylines(tmp_path: Path, fmt: str) -> None:
    Image.new("RGB", (60, 40)).save(tmp_path / "x.png")
    ref = ImageRef("x.png", 60, 40, path=str(tmp_path / "x.png"))
    sample = Sample(ref, (Annotation("lane", Polyline(LINE_A), track_id=4 if fmt == "cvat_video" else None),
                          Annotation("car", Box(5, 6, 15, 14))),
                    split=None if fmt.startswith("cvat") else "train")  # datumaro reads a CVAT file's own subset only
    report = formats.write([sample], tmp_path / "out", format=fmt)
    assert report.annotations["polyline"] == 1 and not report.dropped
    back = list(formats.read(tmp_path / "out", format=fmt))
    assert _lines(back[0]) == [("lane", LINE_A)]
    theirs = dm.Dataset.import_from(str(tmp_path / "out"), "cvat" if fmt.startswith("cvat") else fmt)
    lines = [x for item in theirs for x in item.annotations if isinstance(x, PolyLine)]
    assert [[float(v) for v in x.points] for x in lines] == [LINE_A]
    names = theirs.categories()[dm.AnnotationType.label]
    assert names[lines[0].label].name == "lane"
    if fmt == "cvat_video":
        assert lines[0].attributes.get("track_id") == 4  # the track <track id="4">


def test_a_one_point_polyline_is_refused_naming_the_element(tmp_path: Path) -> None:
    _dataset().export(str(tmp_path / "ds"), "cvat", save_media=True)
    xml = tmp_path / "ds" / "train.xml"  # datumaro names the file after its subset
    text = xml.read_text()
    assert 'points="2.00,3.50;20.00,10.00;30.25,4.00"' in text
    xml.write_text(text.replace('points="2.00,3.50;20.00,10.00;30.25,4.00"', 'points="2.00,3.50"'))
    with pytest.raises(FormatError, match="a polyline needs at least 2 points, got 1") as e:
        list(formats.read(tmp_path / "ds"))
    assert "train.xml" in str(e.value) and "<polyline>" in str(e.value)


# ------------------------------------------------------------------------------------------------ Label Studio

def _ls_task(results: list[dict]) -> list[dict]:
    return [{"id": 1, "data": {"image": "/data/upload/1/x.png"},
             "annotations": [{"id": 1, "result": results, "was_cancelled": False}], "predictions": []}]


def _vector(rid: str, vertices: list[dict], closed: bool = False, labels: tuple[str, ...] = ("Road",)) -> dict:
    return {"id": rid, "type": "vectorlabels", "from_name": "labels", "to_name": "image", "original_width": 200,
            "original_height": 100, "image_rotation": 0,
            "value": {"vertices": vertices, "closed": closed, "vectorlabels": list(labels)}}


def _v(pid: str, x: float, y: float, prev: str | None, **extra) -> dict:
    return {"id": pid, "x": x, "y": y, "prevPointId": prev, "isBezier": False, **extra}


def _ls_read(tmp_path: Path, results: list[dict]) -> tuple[list[Annotation], dict[str, int], dict[str, int]]:
    (tmp_path / "ls").mkdir(exist_ok=True)
    Image.new("RGB", (200, 100)).save(tmp_path / "ls" / "x.png")
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(_ls_task(results)))
    with count_skips() as skips:
        (sample,) = list(labelstudio.read(tmp_path / "ls"))
    return list(sample.annotations), dict(skips), dict(skips.assumed)


def test_label_studio_open_and_closed_vectors(tmp_path: Path) -> None:
    anns, skipped, assumed = _ls_read(tmp_path, [
        _vector("line", [_v("p3", 50, 10, "p2"), _v("p1", 10, 20, None), _v("p2", 25, 30, "p1")]),  # any order
        _vector("area", [_v("q1", 10, 10, None), _v("q2", 20, 10, "q1"), _v("q3", 20, 20, "q2")], closed=True,
                labels=("Park",)),
        _vector("plain", [{"x": 0, "y": 0}, {"x": 100, "y": 100}]),  # no ids: the array's order
    ])
    assert [(a.label, a.geometry) for a in anns] == [
        ("Road", Polyline((20, 20, 50, 30, 100, 10))),
        ("Park", Polygon(((20, 10, 40, 10, 40, 20),))),
        ("Road", Polyline((0, 0, 200, 100))),
    ]
    assert skipped == {} and assumed == {}


def test_label_studio_bezier_segments_become_16_straight_pieces(tmp_path: Path) -> None:
    # the docs' example: point-2 is a Bezier point, point-1 is not (KonvaVector's "partial curve": the missing
    # control point lies 30 % along the chord from point-1)
    anns, _, assumed = _ls_read(tmp_path, [_vector("curve", [
        {"id": "point-1", "x": 25.0, "y": 30.0, "prevPointId": None, "isBezier": False},
        {"id": "point-2", "x": 75.0, "y": 70.0, "prevPointId": "point-1", "isBezier": True,
         "controlPoint1": {"x": 50.0, "y": 40.0}, "controlPoint2": {"x": 60.0, "y": 60.0}}])])
    (line,) = anns
    pts = line.geometry.xy()
    assert len(pts) == 1 + labelstudio.BEZIER_PIECES and pts[0] == (50, 30) and pts[-1] == (150, 70)
    p0, c1, c2, p1 = np.array([50, 30]), np.array([50 + 0.3 * 100, 30 + 0.3 * 40]), np.array([100, 40]), \
        np.array([150, 70])
    t = 0.5
    mid = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t ** 2 * c2 + t ** 3 * p1
    assert pts[8] == pytest.approx(tuple(mid))
    assert assumed == {f"curved vector segment: {labelstudio.BEZIER_PIECES} straight pieces": 1}


def test_label_studio_branching_vector_is_skipped_and_counted(tmp_path: Path) -> None:
    anns, skipped, _ = _ls_read(tmp_path, [
        _vector("tree", [_v("a", 10, 10, None), _v("b", 20, 20, "a"), _v("c", 30, 5, "a")]),
        _vector("ok", [_v("a", 10, 10, None), _v("b", 20, 20, "a")]),
    ])
    assert [a.geometry for a in anns] == [Polyline((20, 10, 40, 20))]
    assert skipped == {"branching vector: a vector whose points branch (skeleton mode) is not one line": 1}


def test_label_studio_writes_vectorlabels_it_reads_back(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "x.png")
    ref = ImageRef("x.png", 200, 100, path=str(tmp_path / "x.png"))
    line = Polyline((20, 20, 50, 30, 100, 10))
    report = labelstudio.write([Sample(ref, (Annotation("Road", line),))], tmp_path / "out")
    assert report.annotations == {"polyline": 1} and not report.dropped
    task = json.loads((tmp_path / "out" / "tasks.json").read_text())[0]
    (result,) = task["annotations"][0]["result"]
    assert result["type"] == "vectorlabels" and result["from_name"] == "vector"
    assert result["value"] == {"vertices": [
        {"id": "p0", "x": 10.0, "y": 20.0, "prevPointId": None, "isBezier": False},
        {"id": "p1", "x": 25.0, "y": 30.0, "prevPointId": "p0", "isBezier": False},
        {"id": "p2", "x": 50.0, "y": 10.0, "prevPointId": "p1", "isBezier": False}],
        "closed": False, "vectorlabels": ["Road"]}
    config = (tmp_path / "out" / "label_config.xml").read_text()
    assert '<VectorLabels name="vector" toName="image">' in config and '<Label value="Road"' in config
    (back,) = list(labelstudio.read(tmp_path / "out"))
    assert [a.geometry for a in back.annotations] == [line]


_SDK = """
import json, sys
from label_studio_sdk.label_interface import LabelInterface

config = '<View><Image name="image" value="$image"/><VectorLabels name="labels" toName="image">' \\
         '<Label value="Road"/><Label value="Boundary"/></VectorLabels></View>'
region = LabelInterface(config).get_control("labels").label(
    ["Road"], closed=False, vertices=[{"x": 10, "y": 20, "id": "a", "prevPointId": None},
                                      {"x": 25, "y": 30, "id": "b", "prevPointId": "a"},
                                      {"x": 50, "y": 10, "id": "c", "prevPointId": "b"}])
ours = LabelInterface(open(sys.argv[1]).read())
tasks = json.load(open(sys.argv[2]))
print(json.dumps({"region": json.loads(region.to_json()),
                  "valid": [ours.validate_annotation(a) for t in tasks for a in t["annotations"]]}))
"""


@pytest.mark.skipif(not LS_PYTHON.exists(), reason=f"label-studio-sdk's venv is not at {LS_PYTHON.parent.parent}")
def test_label_studio_sdk_region_reads_and_sdk_validates_our_export(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "x.png")
    ref = ImageRef("x.png", 200, 100, path=str(tmp_path / "x.png"))
    labelstudio.write([Sample(ref, (Annotation("Road", Polyline((20, 20, 50, 30, 100, 10))),))], tmp_path / "out")
    proc = subprocess.run([str(LS_PYTHON), "-c", _SDK, str(tmp_path / "out" / "label_config.xml"),
                           str(tmp_path / "out" / "tasks.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["valid"] == [True]
    region = {**got["region"], "original_width": 200, "original_height": 100}
    assert region["type"] == "vectorlabels"
    anns, skipped, _ = _ls_read(tmp_path, [region])
    assert [(a.label, a.geometry) for a in anns] == [("Road", Polyline((20, 20, 50, 30, 100, 10)))] and not skipped


# ------------------------------------------------------------------------------------------------ VoTT

def test_vott_polyline_region(tmp_path: Path) -> None:
    root = tmp_path / "vott-json-export"
    root.mkdir()
    Image.new("RGB", (60, 40)).save(root / "x.png")
    region = {"id": "r1", "type": "POLYLINE", "tags": ["lane"],
              "boundingBox": {"left": 2, "top": 3.5, "width": 28.25, "height": 6.5},
              "points": [{"x": 2, "y": 3.5}, {"x": 20, "y": 10}, {"x": 30.25, "y": 4}]}
    project = {"name": "p", "tags": [{"name": "lane", "color": "#ff0000"}],
               "assets": {"id1": {"asset": {"id": "id1", "name": "x.png", "path": "file:x.png", "state": 2,
                                            "size": {"width": 60, "height": 40}, "type": 1},
                                  "regions": [region]}}}
    (root / "p-export.json").write_text(json.dumps(project))
    (sample,) = list(formats.read(root / "p-export.json", format="vott"))
    assert _lines(sample) == [("lane", LINE_A)]
    report = formats.write([sample], tmp_path / "out", format="vott")
    assert report.annotations == {"polyline": 1}
    written = json.loads(next((tmp_path / "out").rglob("*-export.json")).read_text())
    (asset,) = written["assets"].values()
    assert asset["regions"][0]["type"] == "POLYLINE"
    assert asset["regions"][0]["points"] == region["points"]
    assert asset["regions"][0]["boundingBox"] == region["boundingBox"]
