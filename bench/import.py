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
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import coco_dataset, peak_rss_mb  # noqa: E402


def child(annotations: str, project: str) -> None:
    from visionloop.ingest import import_dataset
    from visionloop.store import Store

    shutil.rmtree(project, ignore_errors=True)
    t = time.perf_counter()
    with Store.init(project) as store:
        report = import_dataset(store, Path(annotations), format="coco")
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), **report.counts}))


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
        annotations = coco_dataset(args.work / f"coco-{n}", n, boxes_per_image=10, size=(96, 72))
        gen = time.perf_counter() - t
        out = subprocess.run([sys.executable, __file__, "--child", str(annotations), str(args.work / f"project-{n}")],
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
