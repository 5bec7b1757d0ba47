"""Import a synthetic COCO dataset of small JPEGs into a fresh project: wall time and peak memory.

    python bench/import.py                  # 10k and 50k images, 10 boxes each
    python bench/import.py --sizes 2000     # quick look

Each size runs in its own process, so the peak RSS printed is that import's
alone. Memory must not grow with the dataset: the reader streams the JSON and
the writer flushes every 1,000 images.
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

HERE = Path(__file__).resolve().parent


def generate(root: Path, n: int, boxes_per_image: int = 10, size: tuple[int, int] = (96, 72)) -> Path:
    """n distinct small JPEGs + one COCO JSON with n × boxes_per_image boxes over 80 classes."""
    import cv2
    import numpy as np
    import orjson

    ann_path = root / "annotations.json"
    if ann_path.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    W, H = size
    base = np.zeros((H, W, 3), np.uint8)
    base[:] = np.linspace(30, 220, W, dtype=np.uint8)[None, :, None]
    images, anns = [], []
    aid = 0
    for i in range(n):
        img = base.copy()
        x, y = int(rng.integers(0, W - 20)), int(rng.integers(0, H - 20))
        img[y:y + 20, x:x + 20] = rng.integers(0, 255, 3, dtype=np.uint8)
        img[0, 0] = (i % 256, (i // 256) % 256, (i // 65536) % 256)  # distinct bytes per image
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        name = f"{i:06d}.jpg"
        (root / name).write_bytes(buf.tobytes())
        images.append({"id": i + 1, "file_name": name, "width": W, "height": H})
        for _ in range(boxes_per_image):
            aid += 1
            bw, bh = float(rng.integers(4, 40)), float(rng.integers(4, 30))
            bx, by = float(rng.integers(0, W - 40)), float(rng.integers(0, H - 30))
            anns.append({"id": aid, "image_id": i + 1, "category_id": int(rng.integers(1, 81)),
                         "bbox": [bx, by, bw, bh], "area": bw * bh, "iscrowd": 0, "segmentation": []})
    cats = [{"id": c, "name": f"class_{c:02d}", "supercategory": "thing"} for c in range(1, 81)]
    ann_path.write_bytes(orjson.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def peak_rss_mb() -> float:
    """This process's own peak RSS. (ru_maxrss would include the parent's peak: Linux keeps it across exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(data: str, project: str) -> None:
    from visionloop.ingest import import_dataset
    from visionloop.store import Store

    shutil.rmtree(project, ignore_errors=True)
    t = time.perf_counter()
    with Store.init(project) as store:
        report = import_dataset(store, Path(data) / "annotations.json", format="coco")
    seconds = time.perf_counter() - t
    peak = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, **report.counts}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "visionloop-bench-import")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    for n in args.sizes:
        t = time.perf_counter()
        data = generate(args.work / f"coco-{n}", n)
        gen = time.perf_counter() - t
        out = subprocess.run([sys.executable, __file__, "--child", str(data), str(args.work / f"project-{n}")],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((n, r, gen))
        shutil.rmtree(args.work / f"project-{n}", ignore_errors=True)
    print(f"{'images':>8} {'boxes':>9} {'import s':>9} {'images/s':>9} {'peak MB':>8}   (generation s)")
    for n, r, gen in rows:
        print(f"{n:>8} {r['annotations_added']:>9} {r['seconds']:>9.1f} {n / r['seconds']:>9.0f} "
              f"{r['peak_mb']:>8.0f}   ({gen:.1f})")


if __name__ == "__main__":
    main()
