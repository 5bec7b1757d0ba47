"""Structure from motion on ../shared/datasets/lund (29 street photos with GPS EXIF): visionloop's settings
(street initial-pair thresholds, spatial matching by GPS, GPS position priors, a second registration pass with
relaxed absolute-pose thresholds for the images the first pass leaves out) beside pycolmap's default
initial-pair thresholds (and one pass), same features and matches otherwise.

    flock /tmp/cpu.lock .venv/bin/python bench/sfm.py [--data ../shared/datasets/lund/images] [--threads 2]

Per configuration: images registered, 3D points, mean reprojection error (px), camera centres against the GPS
fixes after geo-registration (similarity fitted by RANSAC, ENU metres; mean and max), wall time split into
extraction, matching, mapping and the second pass, and the images the second pass registered (with their own
camera-vs-GPS error) or that stay unregistered. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from visionloop.geo.sfm import SfmOptions, reconstruct
from visionloop.geo.track import read_folder


def main() -> None:
    ap = argparse.ArgumentParser()
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "datasets" / "lund" / "images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-image-size", type=int, default=1024)
    ap.add_argument("--max-features", type=int, default=8192)
    ap.add_argument("--neighbors", type=int, default=20)
    args = ap.parse_args()
    points = read_folder(args.data)
    rows = []
    for label, street in (("visionloop (street init, GPS priors, second pass)", True),
                          ("pycolmap default init", False)):
        opts = SfmOptions(num_threads=args.threads, max_image_size=args.max_image_size,
                          max_features=args.max_features, neighbors=args.neighbors, street_init=street,
                          second_pass=street)
        with tempfile.TemporaryDirectory() as tmp:
            r = reconstruct(args.data, points, Path(tmp) / "sfm", opts)
            cams = Path(tmp) / "sfm" / "cameras.geojson"
            gps_err = ({f["properties"]["name"]: f["properties"].get("gps_error_m")
                        for f in json.loads(cams.read_text())["features"]} if cams.exists() else {})
        notes = [f"second pass: {n} ({gps_err.get(n)} m)" for n in r.second_pass]
        if r.unregistered and r.registered:
            notes.append("unregistered: " + ", ".join(r.unregistered[:5]) + (" …" if len(r.unregistered) > 5 else ""))
        if r.error:
            notes.append(r.error)
        rows.append((label, r, "; ".join(notes)))

    def f(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    print(f"lund: {len(points)} images, SIFT at {args.max_image_size} px / {args.max_features} features, spatial "
          f"matching ({args.neighbors} GPS neighbours), {args.threads} threads\n")
    print("| settings | registered | points | reproj. px | GPS err mean m | GPS err max m | extract s | match s "
          "| map s | 2nd pass s | total s | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, r, note in rows:
        s = r.seconds
        print(f"| {label} | {r.registered}/{r.images} | {r.points3d} | {f(r.mean_reprojection_px, '.3f')} | "
              f"{f(r.gps_error_mean_m, '.2f')} | {f(r.gps_error_max_m, '.2f')} | {s['extract']:.1f} | "
              f"{s['match']:.1f} | {s.get('map', 0):.1f} | {f(s.get('register2'), '.1f')} | {s['total']:.1f} "
              f"| {note} |")


if __name__ == "__main__":
    main()
