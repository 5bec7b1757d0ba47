"""Map features: detections of one object seen in several registered images, associated, triangulated with the
reconstruction's cameras and written as GeoJSON points.

    scene = load_scene("<project>/geo/sfm/all")               # cameras + poses of `visionloop sfm`, ENU origin
    found = map_features(scene, detections, MapOptions())      # Detection(image, label, xy, box, ...)
    fc = to_geojson(found, scene)                              # WGS84 points, metric position in properties

Each detection is a viewing ray through its box centre (or mask centroid), undistorted by the registered
camera's model (pycolmap). Two detections of one class in two images are a candidate when their rays meet:
the point triangulated from them lies in front of both cameras within `max_range_m`, the rays are at least
`min_angle_deg` apart (depth is measurable), it reprojects into both boxes within the pixel tolerance (the
epipolar cue) and, when the pixels are at hand, the crops' colour histograms agree (the appearance cue). Every
candidate gathers support: in each other image, the nearest detection of its class that the point reprojects
onto within tolerance. Candidates are taken greedily, the best supported first (ties: smaller reprojection
error); a taken feature's detections leave the pool, so a detection belongs to one feature. A feature keeps
only views that reproject within tolerance after the least-squares refinement; one seen in fewer than
`min_views` images, or placed worse than `max_uncertainty_m` (rays too close to parallel, as for an object
straight ahead of a forward-moving camera), is rejected (a detection nobody else confirms never becomes a
feature). Features of one
class closer than `merge_m` are merged when the merged triangulation still reprojects into every box.

Uncertainty: the covariance of the refined point, (JᵀJ)⁻¹ σ², with J the reprojection Jacobian in pixels and σ
the larger of the views' RMS reprojection error and `pixel_sigma` (how well a detector places a box centre).
Facing: the mean horizontal direction from the feature to the cameras that saw it (the side that was seen),
as a compass heading, when the reconstruction is geo-registered (its z axis is up) and the views agree on a
side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError


@dataclass(frozen=True)
class Detection:
    """One detected object in one image: `xy` is the point whose ray is triangulated (box centre or mask
    centroid), `box` (x0, y0, x1, y1) its extent, in the image's upright pixels."""

    image: str
    label: str
    xy: tuple[float, float]
    box: tuple[float, float, float, float]
    confidence: float | None = None
    ref: str = ""  # where it came from (annotation id, prediction log row), for the output
    image_size: tuple[int, int] | None = None  # (width, height) the detection was made on, checked against the camera

    @property
    def size(self) -> float:
        return math.sqrt(max(1e-9, (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])))


@dataclass
class View:
    """A registered image: its camera (pycolmap), world-to-camera rotation R and translation t, centre C."""

    name: str
    camera: Any
    R: np.ndarray
    t: np.ndarray
    C: np.ndarray
    width: int
    height: int

    @property
    def focal(self) -> float:
        return float(self.camera.mean_focal_length())

    def normalized(self, xy: np.ndarray) -> np.ndarray:
        """Undistorted normalized image coordinates (N, 2) of pixels (N, 2)."""
        return np.asarray(self.camera.cam_from_img(np.asarray(xy, dtype=np.float64).reshape(-1, 2)), dtype=float)

    def project(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Pixel of world point X and its depth (<= 0: behind the camera)."""
        Xc = self.R @ X + self.t
        if Xc[2] <= 1e-9:
            return np.array([np.nan, np.nan]), float(Xc[2])
        px = np.asarray(self.camera.img_from_cam(Xc.reshape(1, 3)), dtype=float).reshape(2)
        return px, float(Xc[2])


@dataclass
class Scene:
    """A stored reconstruction: registered views by image name, and the ENU origin when geo-registered."""

    folder: Path
    views: dict[str, View]
    origin: tuple[float, float, float] | None
    georegistered: bool


def load_scene(folder: str | Path) -> Scene:
    """The reconstruction `visionloop sfm` wrote to folder (model/ in COLMAP text, result.json)."""
    from visionloop.geo.sfm import _pycolmap

    folder = Path(folder)
    model = folder / "model"
    if not (model / "images.txt").is_file() or not (folder / "result.json").is_file():
        raise VisionLoopError("no reconstruction here (model/images.txt and result.json are missing)",
                              path=folder, hint="run `visionloop sfm` first, or give --sfm FOLDER")
    pc = _pycolmap()
    rec = pc.Reconstruction(str(model))
    meta = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    views = {}
    for i in rec.reg_image_ids():
        im = rec.image(i)
        cam = rec.camera(im.camera_id)
        m = np.asarray(im.cam_from_world().matrix(), dtype=float)
        views[im.name] = View(im.name, cam, m[:, :3], m[:, 3], np.asarray(im.projection_center(), dtype=float),
                              int(cam.width), int(cam.height))
    origin = tuple(meta["origin"]) if meta.get("origin") else None
    return Scene(folder, views, origin, bool(meta.get("georegistered")) and origin is not None)  # type: ignore[arg-type]


@dataclass
class MapOptions:
    min_views: int = 2  # a feature is seen in this many images or more
    min_px: float = 6.0  # reprojection tolerance: max(min_px, box_frac × sqrt(box area))
    box_frac: float = 0.25
    min_angle_deg: float = 1.0  # the widest pair of rays of a feature is at least this far apart
    max_range_m: float = 60.0  # a feature is at most this far from every camera that saw it
    min_range_m: float = 0.5
    merge_m: float = 1.0  # features of one class closer than this are merged (0: never)
    pixel_sigma: float = 2.0  # floor of the per-view pixel error behind the uncertainty
    max_uncertainty_m: float = 1.0  # a feature placed worse than this (1-σ, worst axis) is rejected
    appearance: float = 0.5  # min Bhattacharyya coefficient of two crops' colour histograms (0: no cue)


@dataclass
class MapFeature:
    label: str
    position: np.ndarray  # reconstruction frame (ENU metres when geo-registered)
    detections: list[Detection]
    reprojection_px: float  # RMS over its views
    covariance: np.ndarray  # 3×3, metres²
    angle_deg: float  # widest angle between two of its rays
    facing_deg: float | None = None

    @property
    def images(self) -> list[str]:
        return [d.image for d in self.detections]

    @property
    def uncertainty_m(self) -> float:
        """1-σ along the worst axis."""
        return float(math.sqrt(max(0.0, float(np.linalg.eigvalsh(self.covariance)[-1]))))


@dataclass
class MapReport:
    features: list[MapFeature]
    detections: int  # detections of the classes on registered images
    rejected: list[Detection] = field(default_factory=list)  # in no feature (single-view, inconsistent)
    not_registered: list[str] = field(default_factory=list)  # images with detections but no camera

    def to_json(self) -> dict[str, Any]:
        return {"features": len(self.features), "detections": self.detections,
                "used": sum(len(f.detections) for f in self.features), "rejected": len(self.rejected),
                "not_registered": self.not_registered,
                "by_class": {c: sum(f.label == c for f in self.features)
                             for c in sorted({f.label for f in self.features})}}


def _ray(view: View, det: Detection) -> np.ndarray:
    n = view.normalized(np.array([det.xy]))[0]
    d = view.R.T @ np.array([n[0], n[1], 1.0])
    return d / np.linalg.norm(d)


def _rays_point(centres: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """The point closest to all rays (least squares)."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for c, d in zip(centres, dirs, strict=True):
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c
    return np.linalg.lstsq(A, b, rcond=None)[0]


class _Solver:
    def __init__(self, scene: Scene, dets: list[Detection], o: MapOptions,
                 hists: list[np.ndarray | None]) -> None:
        self.scene, self.dets, self.o, self.hists = scene, dets, o, hists
        self.views = [scene.views[d.image] for d in dets]
        self.norm = np.array([v.normalized(np.array([d.xy]))[0] for v, d in zip(self.views, dets, strict=True)])
        self.dirs = np.array([_ray(v, d) for v, d in zip(self.views, dets, strict=True)])
        self.tol = np.array([max(o.min_px, o.box_frac * d.size) for d in dets])
        self.by_image_label: dict[tuple[str, str], list[int]] = {}
        for i, d in enumerate(dets):
            self.by_image_label.setdefault((d.image, d.label), []).append(i)

    def error(self, i: int, X: np.ndarray) -> float:
        """Reprojection distance (pixels) of X from detection i's point; inf behind or out of range."""
        v = self.views[i]
        px, depth = v.project(X)
        if not self.o.min_range_m <= depth <= self.o.max_range_m:
            return math.inf
        return float(np.hypot(*(px - np.asarray(self.dets[i].xy))))

    def looks_alike(self, i: int, j: int) -> bool:
        hi, hj = self.hists[i], self.hists[j]
        if self.o.appearance <= 0 or hi is None or hj is None:
            return True
        return float(np.sum(np.sqrt(hi * hj))) >= self.o.appearance

    def refine(self, members: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Least squares of the rays, then Gauss-Newton on the reprojection error in normalized coordinates
        (scaled by each focal length to pixels). Returns (X, J) with J the residuals' Jacobian in pixels."""
        X = _rays_point(np.array([self.views[i].C for i in members]), self.dirs[members])
        J = np.zeros((2 * len(members), 3))
        for _ in range(10):
            r = np.zeros(2 * len(members))
            for k, i in enumerate(members):
                v = self.views[i]
                Xc = v.R @ X + v.t
                z = max(Xc[2], 1e-6)
                f = v.focal
                r[2 * k:2 * k + 2] = f * (Xc[:2] / z - self.norm[i])
                dproj = np.array([[1 / z, 0, -Xc[0] / z ** 2], [0, 1 / z, -Xc[1] / z ** 2]])
                J[2 * k:2 * k + 2] = f * dproj @ v.R
            step = np.linalg.lstsq(J, -r, rcond=None)[0]
            X = X + step
            if np.linalg.norm(step) < 1e-6:
                break
        return X, J

    def angle(self, members: list[int]) -> float:
        d = self.dirs[members]
        cos = np.clip(d @ d.T, -1.0, 1.0)
        return float(np.degrees(np.arccos(cos.min())))

    def pair(self, i: int, j: int) -> np.ndarray | None:
        if self.angle([i, j]) < self.o.min_angle_deg or not self.looks_alike(i, j):
            return None
        X, _ = self.refine([i, j])
        if self.error(i, X) > self.tol[i] or self.error(j, X) > self.tol[j]:
            return None
        return X

    def support(self, X: np.ndarray, label: str, seeds: list[int], free: set[int]) -> list[int]:
        """Per registered image, the nearest free detection of the class that X reprojects onto within
        tolerance and that looks like the seeds."""
        out = []
        for (_image, lab), idx in self.by_image_label.items():
            if lab != label:
                continue
            best, best_e = None, math.inf
            for i in idx:
                if i not in free:
                    continue
                e = self.error(i, X)
                if e <= self.tol[i] and e < best_e and all(self.looks_alike(i, s) for s in seeds if s != i):
                    best, best_e = i, e
            if best is not None:
                out.append(best)
        return sorted(out)

    def settle(self, members: list[int], label: str, seeds: list[int], free: set[int]
               ) -> tuple[list[int], np.ndarray] | None:
        """Refine, re-gather support, drop views beyond tolerance, until the set stops changing."""
        X, _ = self.refine(members)
        for _ in range(5):
            new = self.support(X, label, seeds, free)
            if len(new) < 2:
                return None
            X, _ = self.refine(new)
            kept = [i for i in new if self.error(i, X) <= self.tol[i]]
            if kept != new:
                if len(kept) < 2:
                    return None
                X, _ = self.refine(kept)
                new = kept
            if new == members:
                break
            members = new
        if any(self.error(i, X) > self.tol[i] for i in members) or self.angle(members) < self.o.min_angle_deg:
            return None
        return members, X

    def feature(self, members: list[int], X: np.ndarray) -> MapFeature:
        X, J = self.refine(members)
        errs = np.array([self.error(i, X) for i in members])
        rms = float(np.sqrt(np.mean(errs ** 2)))
        sigma = max(self.o.pixel_sigma, rms)
        cov = np.linalg.pinv(J.T @ J) * sigma ** 2
        facing = None
        if self.scene.georegistered:
            to_cams = np.array([self.views[i].C - X for i in members])[:, :2]
            to_cams /= np.maximum(np.linalg.norm(to_cams, axis=1, keepdims=True), 1e-9)
            mean = to_cams.mean(axis=0)
            if np.linalg.norm(mean) >= 0.5:  # the views agree on one side
                facing = float(math.degrees(math.atan2(mean[0], mean[1])) % 360)
        return MapFeature(self.dets[members[0]].label, X, [self.dets[i] for i in members], rms, cov,
                          self.angle(members), facing)


def map_features(scene: Scene, detections: Iterable[Detection], options: MapOptions | None = None,
                 pixels: Callable[[str], np.ndarray | None] | None = None) -> MapReport:
    """Associate, triangulate and cluster detections into map features (see the module's docstring).
    `pixels(image_name)` returns the image as an (H, W, 3) uint8 array for the appearance cue (None: no cue)."""
    o = options or MapOptions()
    if o.min_views < 2:
        raise VisionLoopError("a map feature needs two views or more (--min-views 2)",
                              hint="a single view gives a direction, not a position")
    all_dets = list(detections)
    not_registered = sorted({d.image for d in all_dets if d.image not in scene.views})
    dets = [d for d in all_dets if d.image in scene.views]
    for d in dets:
        v = scene.views[d.image]
        if d.image_size is not None and tuple(d.image_size) != (v.width, v.height):
            raise VisionLoopError(f"the image is {d.image_size[0]}×{d.image_size[1]} but the reconstruction's "
                                  f"camera for it is {v.width}×{v.height}", where=d.image,
                                  hint="the reconstruction was made from other images of that name; run "
                                       "`visionloop sfm` again")
        if not (0 <= d.xy[0] <= v.width and 0 <= d.xy[1] <= v.height):
            raise VisionLoopError(f"a {d.label} detection ({d.ref}) lies outside the {v.width}×{v.height} image",
                                  where=d.image, hint="the reconstruction was made from other images of that name; "
                                                      "run `visionloop sfm` again")
    hists: list[np.ndarray | None] = [None] * len(dets)
    if pixels is not None and o.appearance > 0:
        hists = _histograms(dets, pixels)
    solver = _Solver(scene, dets, o, hists)
    free = set(range(len(dets)))
    # candidates: every consistent pair of one class in two images
    pairs: list[tuple[int, int]] = []
    for i in range(len(dets)):
        for j in range(i + 1, len(dets)):
            if dets[i].label == dets[j].label and dets[i].image != dets[j].image \
                    and np.linalg.norm(solver.views[i].C - solver.views[j].C) <= 2 * o.max_range_m \
                    and solver.pair(i, j) is not None:
                pairs.append((i, j))
    found: list[tuple[list[int], np.ndarray]] = []
    cache: dict[tuple[int, int], tuple[list[int], np.ndarray] | None] = {}
    while True:
        best = None
        for i, j in pairs:
            if i not in free or j not in free:
                continue
            if (i, j) not in cache:
                got = solver.settle([i, j], dets[i].label, [i, j], free)
                # too few views, or rays too close to parallel for a position (forward motion): not a candidate
                if got is not None and (len(got[0]) < o.min_views
                                        or solver.feature(*got).uncertainty_m > o.max_uncertainty_m):
                    got = None
                cache[(i, j)] = got
            got = cache[(i, j)]
            if got is None:
                continue
            members, X = got
            rms = float(np.sqrt(np.mean([solver.error(k, X) ** 2 for k in members])))
            key = (len(members), -rms)
            if best is None or key > best[0]:
                best = (key, members, X)
        if best is None:
            break
        _, members, X = best
        found.append((members, X))
        free -= set(members)
        # a settled set stays valid unless one of its detections was taken (support only ever saw free ones);
        # a pair that failed may settle now that its neighbours are gone
        cache = {k: v for k, v in cache.items() if v is not None and not set(v[0]) & set(members)}
    found = _merge(solver, found)
    features = [solver.feature(m, X) for m, X in found]
    features.sort(key=lambda f: (f.label, *np.round(f.position, 3)))
    used = {id(d) for f in features for d in f.detections}
    return MapReport(features, len(dets), [d for d in dets if id(d) not in used], not_registered)


def _merge(solver: _Solver, found: list[tuple[list[int], np.ndarray]]) -> list[tuple[list[int], np.ndarray]]:
    """Merge features of one class closer than merge_m when the merged point reprojects into every box and no
    image is in both (one object is one detection per image)."""
    if solver.o.merge_m <= 0:
        return found
    merged = True
    while merged:
        merged = False
        for a in range(len(found)):
            for b in range(a + 1, len(found)):
                (ma, Xa), (mb, Xb) = found[a], found[b]
                if solver.dets[ma[0]].label != solver.dets[mb[0]].label \
                        or np.linalg.norm(Xa - Xb) > solver.o.merge_m \
                        or {solver.dets[i].image for i in ma} & {solver.dets[i].image for i in mb}:
                    continue
                members = sorted(ma + mb)
                X, _ = solver.refine(members)
                if all(solver.error(i, X) <= solver.tol[i] for i in members):
                    found[a] = (members, X)
                    del found[b]
                    merged = True
                    break
            if merged:
                break
    return found


def _histograms(dets: list[Detection], pixels: Callable[[str], np.ndarray | None]) -> list[np.ndarray | None]:
    """A normalized 4×4×4 RGB histogram of each detection's box crop (None when the image is not at hand)."""
    out: list[np.ndarray | None] = [None] * len(dets)
    by_image: dict[str, list[int]] = {}
    for i, d in enumerate(dets):
        by_image.setdefault(d.image, []).append(i)
    for name, idx in by_image.items():
        img = pixels(name)
        if img is None:
            continue
        h, w = img.shape[:2]
        for i in idx:
            x0, y0, x1, y1 = dets[i].box
            crop = img[max(0, int(y0)):min(h, int(math.ceil(y1))), max(0, int(x0)):min(w, int(math.ceil(x1)))]
            if crop.size == 0:
                continue
            q = (crop[..., :3].reshape(-1, 3) // 64).astype(np.int64)
            hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(float)
            out[i] = hist / hist.sum()
    return out


def to_geojson(report: MapReport, scene: Scene) -> dict[str, Any]:
    """A FeatureCollection of Points (lon, lat, alt; WGS84), each with its class, the images that saw it, its
    position in the reconstruction's ENU frame, its 1-σ uncertainty (worst axis and horizontal, metres), the
    RMS reprojection error, the widest ray angle and, when known, the compass heading it faces."""
    from visionloop.geo.track import from_enu

    if not scene.georegistered or scene.origin is None:
        raise VisionLoopError("the reconstruction is not geo-registered (fewer than three images with GPS), so its "
                              "points have no latitude/longitude", path=scene.folder,
                              hint="reconstruct images that carry GPS (EXIF or --sidecar)")
    feats = []
    for k, f in enumerate(report.features):
        e, n, u = (float(v) for v in f.position)
        lat, lon, alt = from_enu(e, n, u, scene.origin)
        horiz = float(math.sqrt(max(0.0, float(np.linalg.eigvalsh(f.covariance[:2, :2])[-1]))))
        confs = [d.confidence for d in f.detections if d.confidence is not None]
        props: dict[str, Any] = {
            "id": k, "class": f.label, "images": f.images, "views": len(f.detections),
            "detections": [d.ref for d in f.detections],
            "enu": [round(e, 3), round(n, 3), round(u, 3)],
            "uncertainty_m": round(f.uncertainty_m, 3), "horizontal_uncertainty_m": round(horiz, 3),
            "covariance_enu": [[round(float(c), 6) for c in row] for row in f.covariance],
            "reprojection_px": round(f.reprojection_px, 3), "ray_angle_deg": round(f.angle_deg, 2),
            "facing_deg": None if f.facing_deg is None else round(f.facing_deg, 1),
            "confidence": round(sum(confs) / len(confs), 4) if confs else None,
        }
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat, alt]},
                      "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def project_copy(root: Path) -> Path:
    """Where a project keeps its latest map features (`visionloop mapfeatures` writes them there too, for the
    web UI's map page)."""
    return Path(root) / "geo" / "mapfeatures.geojson"
