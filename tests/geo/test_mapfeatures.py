"""Map features on lund: three synthetic 0.6 m signs placed at known 3D points of a pycolmap reconstruction of
lund 01–06, rendered into copies of the photos through the reconstruction's own cameras (each projected quad
filled with the sign's colour, its bounds the detection box), plus three single-view false detections; the
features must come back within 1 m of the truth in the reconstruction's metric (ENU) frame, with the false
detections rejected. SfM runs once for the module (six images, 2 000 SIFT features, one thread: ~10 s)."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from visionloop.cli.main import app

pytest.importorskip("pycolmap")

runner = CliRunner()
NAMES = [f"{i:02d}.jpg" for i in range(1, 7)]
# (metres ahead of the first camera, to its right, above it), colour
SIGNS = [((12.0, 3.5, 1.0), (220, 30, 30)), ((18.0, -4.0, 1.5), (30, 60, 220)), ((25.0, 4.0, 2.5), (240, 220, 20))]
HALF = 0.3  # a 0.6 m square sign facing the oncoming cameras
# false detections: one image each, red like sign 0, where no sign is
FALSE = {"02.jpg": (700.0, 600.0), "03.jpg": (150.0, 620.0), "04.jpg": (880.0, 120.0)}


@pytest.fixture(scope="module")
def world(lund, tmp_path_factory):
    """The reconstruction, the signs' true positions, the detections per image and the rendered photos."""
    from visionloop.geo.mapfeatures import load_scene
    from visionloop.geo.sfm import SfmOptions, reconstruct
    from visionloop.geo.track import read_folder

    root = tmp_path_factory.mktemp("mapf")
    originals = root / "originals"
    originals.mkdir()
    for n in NAMES:
        shutil.copy(lund / "images" / n, originals / n)
    r = reconstruct(originals, read_folder(originals), root / "sfm",
                    SfmOptions(matching="exhaustive", max_features=2000, max_image_size=1024, num_threads=1))
    assert r.registered == 6 and r.georegistered, r
    scene = load_scene(root / "sfm")
    first = scene.views["01.jpg"]
    ahead = first.R[2].copy()
    ahead[2] = 0
    ahead /= np.linalg.norm(ahead)
    right, up = np.cross(ahead, [0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])
    truth = [first.C + a * ahead + b * right + c * up for (a, b, c), _ in SIGNS]
    boxes: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {n: [] for n in NAMES}
    rendered = root / "rendered"
    rendered.mkdir()
    for n in NAMES:
        v = scene.views[n]
        with Image.open(originals / n) as im:
            exif = im.info.get("exif", b"")
            img = im.convert("RGB")
        draw = ImageDraw.Draw(img)
        for k, (X, (_, colour)) in enumerate(zip(truth, SIGNS, strict=True)):
            corners = [X + sx * HALF * right + sy * HALF * up for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            proj = [v.project(c) for c in corners]
            xy = np.array([p for p, _ in proj])
            if any(d <= 0 for _, d in proj) or (xy < 0).any() or (xy[:, 0] > v.width).any() \
                    or (xy[:, 1] > v.height).any():
                continue
            draw.polygon([tuple(p) for p in xy], fill=colour)
            boxes[n].append((k, (*xy.min(axis=0), *xy.max(axis=0))))
        if n in FALSE:
            x, y = FALSE[n]
            draw.rectangle((x - 15, y - 15, x + 15, y + 15), fill=SIGNS[0][1])
        img.save(rendered / n, quality=95, exif=exif)
    return {"root": root, "scene": scene, "truth": truth, "boxes": boxes, "rendered": rendered, "ahead": ahead}


def _project(world, tmp_path, *, annotate: bool = True):
    """A project of the rendered photos (the signs and the false detections as annotations), with the
    reconstruction where `visionloop sfm` puts it."""
    from visionloop.core.classes import ClassMap
    from visionloop.core.geometry import Box
    from visionloop.core.sample import Annotation, ImageRef, Sample, Source
    from visionloop.formats import Reader
    from visionloop.ingest import import_samples
    from visionloop.store import Store

    rendered = world["rendered"]

    def samples():
        for n in NAMES:
            anns = [Annotation("traffic_sign", Box(*b), source=Source.HUMAN) for _, b in world["boxes"][n]]
            if n in FALSE:
                x, y = FALSE[n]
                anns.append(Annotation("traffic_sign", Box(x - 15, y - 15, x + 15, y + 15), source=Source.HUMAN))
            yield Sample(ImageRef(n, path=str(rendered / n)), tuple(anns) if annotate else ())

    proj = tmp_path / "proj"
    store = Store.init(proj)
    with store:
        import_samples(store, Reader(ClassMap.from_names(["traffic_sign", "traffic_light"], start=1), samples,
                                     source=rendered), rendered, format="test")
    shutil.copytree(world["root"] / "sfm", proj / "geo" / "sfm" / "all")
    return proj


def _expected_images(world):
    return [sorted(n for n in NAMES if any(k == s for k, _ in world["boxes"][n])) for s in range(len(SIGNS))]


def _check(world, feats):
    """Each feature is one sign: within 1 m, seen by exactly the images that show it."""
    from visionloop.geo.track import to_enu

    expected = _expected_images(world)
    assert [len(e) for e in expected] == [2, 4, 6]  # the sign nearest the road leaves the view after 02.jpg
    origin = world["scene"].origin
    found = set()
    for f in feats:
        p = f["properties"]
        enu = np.array(p["enu"])
        dist = [float(np.linalg.norm(enu - t)) for t in world["truth"]]
        k = int(np.argmin(dist))
        assert dist[k] < 1.0, (k, dist, p)
        assert sorted(p["images"]) == expected[k] and p["views"] == len(expected[k])
        assert p["class"] == "traffic_sign" and p["reprojection_px"] < 2.0
        assert 0 < p["uncertainty_m"] < 1.0 and p["horizontal_uncertainty_m"] <= p["uncertainty_m"]
        # the GeoJSON point is the ENU position (the writer's own inverse: to_enu)
        lon, lat, alt = f["geometry"]["coordinates"]
        assert np.allclose(to_enu(lat, lon, alt, origin), enu, atol=2e-3)
        # facing the cameras that came up the street behind it: opposite the direction of travel ± 45°
        back = np.degrees(np.arctan2(-world["ahead"][0], -world["ahead"][1])) % 360
        assert abs((p["facing_deg"] - back + 180) % 360 - 180) < 45, (p["facing_deg"], back)
        found.add(k)
    assert found == {0, 1, 2}


def test_signs_are_placed_within_a_metre_and_single_view_detections_rejected(world, tmp_path):
    proj = _project(world, tmp_path)
    out = tmp_path / "features.geojson"
    r = runner.invoke(app, ["mapfeatures", str(out), "--classes", "traffic_sign,traffic_light", "--project",
                            str(proj), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    signs = sum(len(b) for b in world["boxes"].values())
    assert res == {"out": str(out), "features": 3, "detections": signs + 3, "used": signs, "rejected": 3,
                   "not_registered": [], "by_class": {"traffic_sign": 3}}
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    _check(world, fc["features"])
    # the project keeps the latest run for the web UI's map page, which draws it
    from visionloop.store import Store
    from visionloop.web.views import geo_map

    assert json.loads((proj / "geo" / "mapfeatures.geojson").read_text()) == fc
    with Store.open(proj) as store:
        drawn = geo_map(store)["features"]
    assert [f["geometry"] for f in drawn] == [f["geometry"] for f in fc["features"]]
    assert {f["properties"]["layer"] for f in drawn} == {"feature"}
    # run again: the previous output is replaced; a file that is not ours is refused and left as it was
    assert runner.invoke(app, ["mapfeatures", str(out), "--classes", "traffic_sign", "-p", str(proj)]).exit_code == 0
    mine = tmp_path / "notes.txt"
    mine.write_text("keep me")
    r = runner.invoke(app, ["mapfeatures", str(mine), "--classes", "traffic_sign", "-p", str(proj)])
    assert r.exit_code == 1 and "not a GeoJSON" in str(r.exception) and mine.read_text() == "keep me"


def test_geometry_alone_rejects_the_false_detections(world, tmp_path):
    """Without the colour cue (the false detections are painted red like sign 0), epipolar consistency and
    multi-view support still leave them out; with two views required per feature nothing else appears."""
    from visionloop.geo.mapfeatures import MapOptions, map_features
    from visionloop.geo.project import annotation_detections
    from visionloop.store import Store

    proj = _project(world, tmp_path)
    with Store.open(proj) as store:
        dets = annotation_detections(store, ["traffic_sign"])
    rep = map_features(world["scene"], dets, MapOptions(appearance=0))
    assert len(rep.features) == 3
    assert sorted((d.image, d.xy) for d in rep.rejected) == sorted((n, xy) for n, xy in FALSE.items())
    for f in rep.features:
        assert min(np.linalg.norm(f.position - t) for t in world["truth"]) < 1.0
    # three views required: the sign seen twice is dropped as well
    assert len(map_features(world["scene"], dets, MapOptions(appearance=0, min_views=3)).features) == 2


def test_a_models_logged_predictions_are_mapped(world, tmp_path):
    """--model reads the prediction log (served images matched to the project's by content)."""
    from visionloop.store import Store
    from visionloop.store import prediction_log as plog

    proj = _project(world, tmp_path, annotate=False)
    entries = []
    for n in NAMES:
        preds = [{"box": {"x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]}, "class": "traffic_sign", "class_id": 0,
                  "confidence": 0.9} for _, b in world["boxes"][n]]
        preds.append({"box": {"x0": 10.0, "y0": 10.0, "x1": 40.0, "y1": 40.0}, "class": "car", "class_id": 1,
                      "confidence": 0.8})
        data = (world["rendered"] / n).read_bytes()
        w, h = Image.open(io.BytesIO(data)).size
        entries.append(plog.LogEntry(datetime(2026, 12, 1, tzinfo=UTC), "signs", "signs", 1, "detect", data, w, h,
                                     preds, image_name=n))
    with Store.open(proj) as store:
        plog.append(store, entries)
    out = tmp_path / "logged.geojson"
    r = runner.invoke(app, ["mapfeatures", str(out), "--classes", "traffic_sign", "--model", "signs", "-p",
                            str(proj), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["features"] == 3
    _check(world, json.loads(out.read_text())["features"])
    r = runner.invoke(app, ["mapfeatures", str(out), "--classes", "traffic_sign", "--model", "nobody", "-p",
                            str(proj)])
    assert r.exit_code == 1 and "nothing from model 'nobody'" in str(r.exception)


def test_the_ray_goes_through_a_masks_or_polygons_centroid():
    """Instance masks and polygons use their area centroid (pixel centres), not their box's centre."""
    from visionloop.core.geometry import Box, Mask, Polygon, RotatedBox
    from visionloop.geo.project import _centre

    m = np.zeros((40, 60), dtype=np.uint8)
    m[10:20, 5:15] = 1  # a 10×10 square ...
    m[10:12, 15:45] = 1  # ... with a thin arm to the right: the box centre is at x 25, the centroid near 15
    mask = Mask.from_array(m)
    ys, xs = np.nonzero(m)
    assert _centre(mask, mask.bounds()) == pytest.approx((xs.mean() + 0.5, ys.mean() + 0.5))
    assert _centre(mask, mask.bounds())[0] < 20 < (mask.bounds().x0 + mask.bounds().x1) / 2
    # an L of two rectangles 0..4×0..1 and 0..1×1..4 (areas 4 and 3): centroid ((2·4 + 0.5·3)/7, (0.5·4 + 2.5·3)/7)
    poly = Polygon.from_points([(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)])
    assert _centre(poly, poly.bounds()) == pytest.approx((9.5 / 7, 9.5 / 7))
    assert _centre(RotatedBox(30, 40, 10, 4, 30), Box(20, 30, 40, 50)) == (30, 40)
    assert _centre(Box(0, 0, 10, 4), Box(0, 0, 10, 4)) == (5, 2)


def test_a_project_without_a_reconstruction_is_told_to_run_sfm(tmp_path):
    proj = tmp_path / "proj"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    out = tmp_path / "f.geojson"
    r = runner.invoke(app, ["mapfeatures", str(out), "--classes", "traffic_sign", "-p", str(proj)])
    assert r.exit_code == 1 and "no reconstruction here" in str(r.exception) and "visionloop sfm" in str(r.exception)
    assert not out.exists()
    r = runner.invoke(app, ["mapfeatures", str(out), "--classes", " , ", "-p", str(proj)])
    assert r.exit_code == 1 and "--classes names no class" in str(r.exception)
