"""Structure from motion with pycolmap: SIFT, matching by GPS proximity or by sequence, incremental mapping with
street-sequence initial-pair settings and GPS position priors, geo-registration to the GPS track in an ENU
metric frame, and exports (COLMAP text model, PLY, camera positions as GeoJSON)."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.formats.output import MARKER, marker_text, refuse_replace
from visionloop.geo.track import GeoPoint, from_enu, to_enu

#: initial-pair thresholds measured to work on forward-moving street sequences (lund); COLMAP's defaults
#: (16°, 0.95, 100) find no initial pair there
STREET_INIT = {"init_min_tri_angle": 2.0, "init_max_forward_motion": 0.999, "init_min_num_inliers": 50}
#: absolute-pose thresholds of the second registration pass (COLMAP's defaults: 30 inliers, ratio 0.25). The
#: last photo of a forward-moving street sequence sees few triangulated points (its matches with the photo
#: before it are two-view tracks, not triangulated while it is unregistered): on lund 29.jpg has 28
#: 2D-3D correspondences, all inliers, and misses the default 30
RELAXED_ABS_POSE = {"abs_pose_min_num_inliers": 15, "abs_pose_min_inlier_ratio": 0.15}


@dataclass
class SfmOptions:
    matching: str = "spatial"  # spatial (GPS proximity) | sequential (file order) | exhaustive
    neighbors: int = 10  # spatial: nearest images by GPS; sequential: overlap
    max_image_size: int = 1024  # SIFT runs on images shrunk to this (keypoints are in full-size pixels)
    max_features: int = 4096
    num_threads: int = 2
    street_init: bool = True  # False: pycolmap's default initial-pair thresholds
    gps_prior: bool = True  # GPS positions as priors in bundle adjustment
    seed: int = 0
    # after incremental mapping, images left out are tried again against the largest model with
    # RELAXED_ABS_POSE (pycolmap's pipeline continued from that model: registration, triangulation, bundle
    # adjustment); False: one pass with COLMAP's absolute-pose thresholds
    second_pass: bool = True


@dataclass
class SfmResult:
    images: int
    registered: int
    points3d: int
    observations: int
    mean_reprojection_px: float | None
    gps_error_mean_m: float | None
    gps_error_max_m: float | None
    georegistered: bool
    origin: tuple[float, float, float] | None  # ENU origin (lat, lon, alt)
    seconds: dict[str, float] = field(default_factory=dict)
    out: str = ""
    unregistered: list[str] = field(default_factory=list)
    second_pass: list[str] = field(default_factory=list)  # registered by the second (relaxed) pass
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pycolmap() -> Any:
    try:
        import pycolmap
    except ImportError:
        raise VisionLoopError("structure from motion needs pycolmap", hint="pip install 'visionloop[geo]'") from None
    pycolmap.logging.minloglevel = 2  # warnings and errors only
    return pycolmap


def reconstruct(image_dir: str | Path, points: list[GeoPoint], out: str | Path,
                options: SfmOptions | None = None) -> SfmResult:
    """Reconstruct the images named in points (under image_dir) into out/ (database, sparse model, exports).

    The largest model is kept; with options.second_pass, the images it leaves out are tried again against it with
    RELAXED_ABS_POSE (result.second_pass names those it then registers; result.unregistered those still left
    out). When three or more of its images carry GPS it is moved into the ENU frame
    around the first located image (similarity fitted by RANSAC on camera centres vs GPS, 5 m threshold) and
    its camera centres are compared with GPS."""
    pc = _pycolmap()
    o = options or SfmOptions()
    out = Path(out)
    if out.is_symlink() or out.is_file() or (out.is_dir() and any(out.iterdir())):
        # replace only an earlier reconstruction visionloop wrote (its marker), never the images, a project,
        # or a folder of the user's
        refuse_replace(out, protect=[image_dir])
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(marker_text("colmap-sfm"), encoding="utf-8")
    names = [p.name for p in points]
    if len(names) < 2:
        raise VisionLoopError("structure from motion needs two images or more", path=image_dir)
    located = [p for p in points if p.located]
    origin = (located[0].lat, located[0].lon, located[0].alt or 0.0) if located else None
    db = out / "database.db"
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    ext = pc.FeatureExtractionOptions()
    ext.num_threads, ext.max_image_size = o.num_threads, o.max_image_size
    ext.sift.max_num_features = o.max_features
    pc.extract_features(db, str(image_dir), image_names=names, camera_mode=pc.CameraMode.SINGLE,
                        extraction_options=ext, device=pc.Device.cpu)
    t["extract"] = time.perf_counter() - t0
    mo = pc.FeatureMatchingOptions()
    mo.num_threads = o.num_threads
    if o.matching == "spatial":
        if len(located) < len(points):
            raise VisionLoopError("spatial matching needs GPS on every image",
                                  hint="use --matching sequential, or give a --sidecar GPX/CSV")
        po = pc.SpatialPairingOptions()
        po.max_num_neighbors, po.num_threads = o.neighbors, o.num_threads
        pc.match_spatial(db, matching_options=mo, pairing_options=po, device=pc.Device.cpu)
    elif o.matching == "sequential":
        po = pc.SequentialPairingOptions()
        po.overlap, po.num_threads = o.neighbors, o.num_threads
        pc.match_sequential(db, matching_options=mo, pairing_options=po, device=pc.Device.cpu)
    elif o.matching == "exhaustive":
        pc.match_exhaustive(db, matching_options=mo, device=pc.Device.cpu)
    else:
        raise VisionLoopError(f"unknown matching {o.matching!r}", hint="spatial | sequential | exhaustive")
    t["match"] = time.perf_counter() - t0 - t["extract"]
    ip = pc.IncrementalPipelineOptions()
    ip.num_threads, ip.random_seed = o.num_threads, o.seed
    if o.street_init:
        for k, v in STREET_INIT.items():
            setattr(ip.mapper, k, v)
    ip.use_prior_position = o.gps_prior and bool(located)
    sparse = out / "sparse"
    sparse.mkdir()
    models = pc.incremental_mapping(db, str(image_dir), sparse, ip)
    t["map"] = time.perf_counter() - t0 - t["extract"] - t["match"]
    if not models:
        t["total"] = time.perf_counter() - t0
        return SfmResult(len(names), 0, 0, 0, None, None, None, False, origin, t, str(out), names,
                         error="no initial image pair found (nothing reconstructed)")
    key, rec = max(models.items(), key=lambda kv: kv[1].num_reg_images())
    first = {rec.image(i).name for i in rec.reg_image_ids()}
    if o.second_pass and len(first) < len(names):
        for k, v in RELAXED_ABS_POSE.items():
            setattr(ip.mapper, k, v)
        again = out / "sparse2"
        again.mkdir()
        more = pc.incremental_mapping(db, str(image_dir), again, ip, input_path=sparse / str(key))
        if more:
            best = max(more.values(), key=lambda r: r.num_reg_images())
            if best.num_reg_images() > rec.num_reg_images():
                rec = best
        t["register2"] = time.perf_counter() - t0 - t["extract"] - t["match"] - t["map"]
    georeg = False
    errors: list[float] = []
    by_name = {p.name: p for p in located}
    if origin is not None:
        reg_names = [rec.image(i).name for i in rec.reg_image_ids() if rec.image(i).name in by_name]
        if len(reg_names) >= 3:
            import numpy as np

            enu = np.array([to_enu(by_name[n].lat, by_name[n].lon, by_name[n].alt, origin) for n in reg_names])
            ro = pc.RANSACOptions()
            ro.max_error, ro.random_seed = 5.0, o.seed
            sim = pc.align_reconstruction_to_locations(rec, reg_names, enu, 3, ro)
            if sim is not None:
                rec.transform(sim)
                georeg = True
                for n, e in zip(reg_names, enu, strict=True):
                    c = rec.find_image_with_name(n).projection_center()
                    errors.append(float(np.linalg.norm(np.asarray(c) - e)))
    t["total"] = time.perf_counter() - t0
    reg = {rec.image(i).name for i in rec.reg_image_ids()}
    result = SfmResult(
        images=len(names), registered=rec.num_reg_images(), points3d=rec.num_points3D(),
        observations=rec.compute_num_observations(),
        mean_reprojection_px=float(rec.compute_mean_reprojection_error()),
        gps_error_mean_m=sum(errors) / len(errors) if errors else None,
        gps_error_max_m=max(errors) if errors else None, georegistered=georeg, origin=origin,
        seconds=t, out=str(out), unregistered=[n for n in names if n not in reg],
        second_pass=[n for n in names if n in reg and n not in first])
    export(rec, out, origin if georeg else None, by_name)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def export(rec: Any, out: Path, origin: tuple[float, float, float] | None, gps: dict[str, GeoPoint]) -> None:
    """out/model/ (COLMAP text: cameras.txt, images.txt, points3D.txt), out/points.ply and, when geo-registered,
    out/cameras.geojson: each registered camera's centre as a Point (lon, lat, alt) with its name, its viewing
    direction as a compass heading, and its distance to the GPS fix."""
    model = out / "model"
    model.mkdir(exist_ok=True)
    rec.write_text(str(model))
    rec.export_PLY(str(out / "points.ply"))
    if origin is None:
        return
    feats = []
    for i in sorted(rec.reg_image_ids()):
        im = rec.image(i)
        e, n, u = (float(v) for v in im.projection_center())
        d = im.viewing_direction()
        lat, lon, alt = from_enu(e, n, u, origin)
        props: dict[str, Any] = {"name": im.name, "heading": round(math.degrees(math.atan2(d[0], d[1])) % 360, 2),
                                 "enu": [round(e, 3), round(n, 3), round(u, 3)]}
        g = gps.get(im.name)
        if g is not None:
            ge = to_enu(g.lat, g.lon, g.alt, origin)
            props["gps_error_m"] = round(math.dist((e, n, u), ge), 3)
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat, alt]},
                      "properties": props})
    (out / "cameras.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
