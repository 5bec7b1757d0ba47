"""Map features on ../shared/datasets/lund: synthetic signs at known 3D points of the reconstruction, rendered
into the photos through its own cameras, recovered by `visionloop mapfeatures`.

    flock /tmp/cpu.lock .venv/bin/python bench/mapfeatures.py [--data ../shared/datasets/lund/images] [--project P]

Reconstructs the photos (visionloop's SfM settings), then places one 0.6 m red square sign beside the street every
third camera (10 m ahead of it, 3.5 m to the left or right in turn, 1.5 m up, facing the oncoming cameras), fills
each sign's projected quad in every photo that sees it whole, and adds single-view false detections (red squares
painted in one photo each, where no sign is). The detections are the quads' bounds, jittered by a Gaussian of
`--jitter` pixels per edge to stand in for a detector. Prints per jitter: signs placed (seen in two photos or
more), features found, signs recovered within 1 m, position error (mean, max, metres, in the reconstruction's ENU
frame; the nearest feature of each sign), false detections rejected, duplicates (a second feature of one sign),
spurious features (near no sign, or mixing detections of several), time. Then two real signs of lund: where they
land, and the size each view's box implies at the triangulated depth. With --project, leaves a project of the
rendered photos and their annotations (jitter 0) with the reconstruction in place, for `visionloop mapfeatures`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from visionloop.geo.mapfeatures import Detection, MapOptions, load_scene, map_features
from visionloop.geo.sfm import SfmOptions, reconstruct
from visionloop.geo.track import read_folder

RED = (210, 30, 35)
#: two real signs in lund, boxed by a colour threshold (red/yellow) and the largest connected component of a crop
#: around each: a speed-bump warning triangle seen in 21 and 22, a stop sign seen in 22 and 23
REAL = [("21.jpg", "warning triangle", (372, 325, 402, 352)), ("22.jpg", "warning triangle", (276, 322, 328, 369)),
        ("22.jpg", "stop sign", (631, 348, 648, 376)), ("23.jpg", "stop sign", (696, 321, 723, 370))]
HALF = 0.3


def main() -> None:
    ap = argparse.ArgumentParser()
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "datasets" / "lund" / "images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--false", type=int, default=12, help="single-view false detections")
    ap.add_argument("--jitter", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    ap.add_argument("--project", type=Path, help="leave a project of the rendered photos here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        points = read_folder(args.data)
        t0 = time.perf_counter()
        r = reconstruct(args.data, points, tmp_path / "sfm", SfmOptions(num_threads=args.threads, neighbors=20,
                                                                         max_features=8192))
        sfm_s = time.perf_counter() - t0
        scene = load_scene(tmp_path / "sfm")
        names = sorted(scene.views)
        truth, boxes, rendered = place(scene, names, args.data, tmp_path / "rendered", args.false)
        print(f"lund: {r.registered}/{r.images} images registered, SfM {sfm_s:.1f} s; {len(truth)} signs seen in two "
              f"photos or more ({sum(len(v) for v in boxes['signs'].values())} detections), {args.false} single-view "
              f"false detections\n")
        print("| jitter px | signs | features | signs within 1 m | error mean m | error max m | uncertainty mean m "
              "| false rejected | duplicates | spurious | time s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        rng = np.random.default_rng(0)
        for jitter in args.jitter:
            dets = []
            for n in names:
                for k, b in boxes["signs"][n]:
                    dets.append(_det(n, b, jitter, rng, f"sign{k}"))
                for k, b in boxes["false"].get(n, []):
                    dets.append(_det(n, b, jitter, rng, f"false{k}"))
            t = time.perf_counter()
            rep = map_features(scene, dets, MapOptions(), pixels=lambda name: rendered.get(name))
            dt = time.perf_counter() - t
            best: dict[int, float] = {}  # sign -> error of the nearest feature made of its detections only
            spurious = duplicates = 0
            for f in rep.features:
                d = [float(np.linalg.norm(f.position - x)) for x in truth]
                k = int(np.argmin(d))
                if d[k] < 1.0 and all(det.ref.startswith(f"sign{k}@") for det in f.detections):
                    duplicates += k in best
                    best[k] = min(d[k], best.get(k, d[k]))
                else:
                    spurious += 1
            errs = list(best.values())
            rejected = sum(d.ref.startswith("false") for d in rep.rejected)
            unc = np.mean([f.uncertainty_m for f in rep.features]) if rep.features else float("nan")
            print(f"| {jitter:g} | {len(truth)} | {len(rep.features)} | {len(errs)} | "
                  f"{np.mean(errs) if errs else float('nan'):.3f} | {max(errs) if errs else float('nan'):.3f} | "
                  f"{unc:.3f} | {rejected}/{args.false} | {duplicates} | {spurious} | {dt:.2f} |")
        real(scene, args.data)
        if args.project is not None:
            make_project(args.project, names, boxes, tmp_path)


def real(scene, data) -> None:  # type: ignore[no-untyped-def]
    """The real signs: where they land, and the size each view's box implies at the triangulated depth (a
    depth error would make the two views disagree)."""
    dets = [Detection(n, "traffic_sign", ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), b, None, f"{what}@{n}")
            for n, what, b in REAL if n in scene.views]
    rep = map_features(scene, dets, MapOptions(),
                       pixels=lambda n: np.asarray(Image.open(Path(data) / n).convert("RGB")))
    print(f"\nreal signs: {len(rep.features)} features from {len(dets)} detections, {len(rep.rejected)} rejected\n")
    print("| sign | photos | ENU m | 1-σ m | reproj. px | view | ahead m | right m | box implies w × h m |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in rep.features:
        for d in f.detections:
            v = scene.views[d.image]
            right, _, ahead = v.R @ f.position + v.t
            w, h = ((d.box[2] - d.box[0]) * ahead / v.focal, (d.box[3] - d.box[1]) * ahead / v.focal)
            print(f"| {d.ref.split('@')[0]} | {', '.join(f.images)} | {np.round(f.position, 2).tolist()} | "
                  f"{f.uncertainty_m:.2f} | {f.reprojection_px:.2f} | {d.image} | {ahead:.2f} | {right:.2f} | "
                  f"{w:.2f} × {h:.2f} |")


def _det(name: str, b: tuple[float, ...], jitter: float, rng: np.random.Generator, ref: str) -> Detection:
    x0, y0, x1, y1 = (np.asarray(b) + (rng.normal(0, jitter, 4) if jitter else 0)).tolist()
    return Detection(name, "traffic_sign", ((x0 + x1) / 2, (y0 + y1) / 2), (x0, y0, x1, y1), None, f"{ref}@{name}")


def place(scene, names, data, out, n_false):  # type: ignore[no-untyped-def]
    out.mkdir()
    truth, corners_of = [], []
    for i, n in enumerate(names[::3]):
        v = scene.views[n]
        ahead = v.R[2].copy()
        ahead[2] = 0
        ahead /= np.linalg.norm(ahead)
        right, up = np.cross(ahead, [0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])
        X = v.C + 10 * ahead + (3.5 if i % 2 else -3.5) * right + 1.5 * up
        truth.append(X)
        corners_of.append([X + sx * HALF * right + sy * HALF * up for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    signs: dict[str, list] = {n: [] for n in names}
    for n in names:
        v = scene.views[n]
        for k, corners in enumerate(corners_of):
            proj = [v.project(c) for c in corners]
            xy = np.array([p for p, _ in proj])
            if all(0 < d < 60 for _, d in proj) and (xy >= 0).all() and (xy[:, 0] <= v.width).all() \
                    and (xy[:, 1] <= v.height).all():
                signs[n].append((k, (xy, (*xy.min(axis=0), *xy.max(axis=0)))))
    seen = {k: sum(any(kk == k for kk, _ in signs[n]) for n in names) for k in range(len(truth))}
    keep = [k for k in range(len(truth)) if seen[k] >= 2]
    remap = {k: j for j, k in enumerate(keep)}
    rng = np.random.default_rng(1)
    false: dict[str, list] = {}
    for k in range(n_false):
        n = names[int(rng.integers(len(names)))]
        s = float(rng.uniform(20, 50))
        x, y = float(rng.uniform(60, 1024 - 60)), float(rng.uniform(60, 768 - 60))
        false.setdefault(n, []).append((k, (x - s / 2, y - s / 2, x + s / 2, y + s / 2)))
    rendered = {}
    for n in names:
        with Image.open(Path(data) / n) as im:
            exif = im.info.get("exif", b"")
            img = im.convert("RGB")
        draw = ImageDraw.Draw(img)
        for _, (xy, _) in signs[n]:
            draw.polygon([tuple(p) for p in xy], fill=RED)
        for _, b in false.get(n, []):
            draw.rectangle(b, fill=RED)
        img.save(out / n, quality=95, exif=exif)
        rendered[n] = np.asarray(img)
    boxes = {"signs": {n: [(remap[k], b) for k, (_, b) in signs[n] if k in remap] for n in names}, "false": false}
    return [truth[k] for k in keep], boxes, rendered


def make_project(path: Path, names: list[str], boxes: dict, tmp_path: Path) -> None:
    from visionloop.core.classes import ClassMap
    from visionloop.core.geometry import Box
    from visionloop.core.sample import Annotation, ImageRef, Sample, Source
    from visionloop.formats import Reader
    from visionloop.ingest import import_samples
    from visionloop.store import Store

    rendered = tmp_path / "rendered"

    def samples():  # type: ignore[no-untyped-def]
        for n in names:
            anns = [Annotation("traffic_sign", Box(*b), source=Source.HUMAN)
                    for _, b in boxes["signs"][n] + boxes["false"].get(n, [])]
            yield Sample(ImageRef(n, path=str(rendered / n)), tuple(anns))

    with Store.init(path) as store:
        import_samples(store, Reader(ClassMap.from_names(["traffic_sign", "traffic_light"], start=1), samples,
                                     source=rendered), rendered, format="bench")
    shutil.copytree(tmp_path / "sfm", path / "geo" / "sfm" / "all")
    print(f"\nproject of the rendered photos: {path} (visionloop mapfeatures --classes traffic_sign OUT -p {path})")


if __name__ == "__main__":
    main()
