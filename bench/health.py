"""Health check on a synthetic project: time and peak memory of the statistics and of the
near-duplicate search, each in its own child process (peak = that child's VmHWM).

    python bench/health.py                  # 50,000 images / 500,000 boxes
    python bench/health.py --images 5000    # quick look

Images are 256×192 JPEGs of random smooth colour fields with ten coloured boxes each (so their
perceptual hashes are as varied as photos'), and 1% of them are copies of another image, resized,
recompressed or cropped by 5%, so the search has real matches to find. The project is made once
by `import_dataset` (not timed) and reused. The near-duplicate time is cold: no hash cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

W, H = 256, 192


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(root: Path, n: int, boxes_per_image: int = 10, copies: float = 0.01) -> Path:
    """n JPEGs + one COCO JSON (80 classes); the last `copies` × n images are altered copies of others."""
    import cv2
    import numpy as np
    import orjson

    ann_path = root / "annotations.json"
    if ann_path.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_copies = int(n * copies)
    images, anns = [], []
    aid = 0
    for i in range(n):
        name = f"{i:06d}.jpg"
        if i >= n - n_copies:  # an altered copy of an earlier image
            src = cv2.imread(str(root / f"{int(rng.integers(0, n - n_copies)):06d}.jpg"))
            how = i % 3
            if how == 0:
                img = cv2.resize(src, (W * 3 // 4, H * 3 // 4), interpolation=cv2.INTER_AREA)
            elif how == 1:
                img = src
            else:
                img = src[round(H * 0.05):, : W - round(W * 0.05)]
            q = 40 if how == 1 else 85
        else:
            field = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
            img = cv2.resize(field, (W, H), interpolation=cv2.INTER_CUBIC)
            q = 85
        h, w = img.shape[:2]
        boxes = []
        for _ in range(boxes_per_image):
            aid += 1
            bw, bh = int(rng.integers(4, 60)), int(rng.integers(4, 45))
            bx, by = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            if i < n - n_copies:
                cv2.rectangle(img, (bx, by), (bx + bw, by + bh), [int(c) for c in rng.integers(0, 256, 3)], -1)
            boxes.append({"id": aid, "image_id": i + 1, "category_id": int(rng.integers(1, 81)),
                          "bbox": [bx, by, bw, bh], "area": bw * bh, "iscrowd": 0})
        (root / name).write_bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes())
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        anns += boxes
    cats = [{"id": c, "name": f"class_{c:02d}"} for c in range(1, 81)]
    ann_path.write_bytes(orjson.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def child(what: str, project: str) -> None:
    from visionloop.health import check, duplicates
    from visionloop.health.load import load_images
    from visionloop.store import Store

    with Store.open(project) as store:
        t = time.perf_counter()
        if what == "statistics":
            r = check(store, duplicates_search=False)
            extra = {"images": r.counts["images"], "annotations": r.counts["annotations"],
                     "findings": len(r.findings), "timings": r.timings}
        else:
            images = load_images(store)
            bl = duplicates.analyse(store, images, cache=False)
            extra = {"near_pairs": int(len(bl.near_a)), "timings": {k: round(v, 2) for k, v in bl.timings.items()}}
        seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "visionloop-bench-health")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    n = args.images
    t = time.perf_counter()
    data = generate(args.work / f"data-{n}", n)
    gen = time.perf_counter() - t
    project = args.work / f"project-{n}"
    t = time.perf_counter()
    if not (project / "visionloop.yaml").exists():
        shutil.rmtree(project, ignore_errors=True)
        from visionloop.ingest import import_dataset
        from visionloop.store import Store

        with Store.init(project) as store:
            import_dataset(store, data / "annotations.json", format="coco")
    setup = time.perf_counter() - t
    rows = {}
    for what in ("statistics", "near-duplicates"):
        out = subprocess.run([sys.executable, __file__, "--child", what, str(project)], check=True,
                             capture_output=True, text=True)
        rows[what] = json.loads(out.stdout.strip().splitlines()[-1])
    boxes = rows["statistics"]["annotations"]
    print(f"{n} images, {boxes} boxes (generation {gen:.0f} s, import {setup:.0f} s, not timed)")
    print(f"{'stage':<16} {'seconds':>8} {'peak MB':>8}   detail")
    for what, r in rows.items():
        detail = {k: v for k, v in r.items() if k not in ("seconds", "peak_mb")}
        print(f"{what:<16} {r['seconds']:>8.1f} {r['peak_mb']:>8.0f}   {json.dumps(detail)}")


if __name__ == "__main__":
    main()
