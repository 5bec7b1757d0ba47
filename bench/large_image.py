"""Peak memory of one 10000×10000 JPEG through import and version create (issue 11 item 7).

    python bench/large_image.py

Each step runs in a child process of its own; the table gives its peak RSS (ru_maxrss). "version create,
full decode" forces OpenCV's full-size decode (`pixels.reduction_for` returning 1), as before reduced
decoding; "version create" is the default, where a recipe that resizes to 640 decodes at 1/8 size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STEP = r"""
import sys
from pathlib import Path
from visionloop.store import Store
work = Path(sys.argv[1]); step = sys.argv[2]
if step == "import":
    from visionloop.ingest import import_dataset
    store = Store.init(work / "p")
    import_dataset(store, work / "big")
else:
    from visionloop.versions.generate import create_version
    if step == "full":
        from visionloop.transforms import pixels
        pixels.reduction_for = lambda *a, **k: 1  # transforms.frame calls it through the module
    store = Store.open(work / "p")
    create_version(store, {"schema": 1, "seed": 1,
                           "preprocess": {"resize": {"width": 640, "height": 640, "mode": "fit", "edges": "black"}}},
                   name=step, workers=0)
print(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024)
"""


def main() -> None:
    import cv2
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "big").mkdir()
        y, x = np.mgrid[0:10000, 0:10000]
        img = np.stack([(x // 40) % 256, (y // 40) % 256, ((x + y) // 80) % 256], axis=-1).astype(np.uint8)
        cv2.imwrite(str(work / "big" / "big.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        del img, x, y
        size = (work / "big" / "big.jpg").stat().st_size
        (work / "big" / "ann.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "big.jpg", "width": 10000, "height": 10000}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1000, 2000, 3000, 4000], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "thing"}]}))
        rows = []
        for step, label in (("import", "import (probe, hash, blob)"), ("full", "version create, full decode"),
                            ("reduced", "version create (resize 640)")):
            out = subprocess.run([sys.executable, "-c", STEP, str(work), step], capture_output=True, text=True, env={**os.environ, "VISIONLOOP_MAX_IMAGE_PIXELS": "0"})
            if out.returncode:
                sys.exit(f"{step} failed: {out.stderr[-2000:]}")
            rows.append((label, float(out.stdout.strip().splitlines()[-1])))
        print(f"one 10000×10000 JPEG ({size / 1e6:.1f} MB)\n")
        print("| step | peak RSS (MB) |\n|---|---:|")
        for label, mb in rows:
            print(f"| {label} | {mb:.0f} |")
        print(f"\nfull / reduced: {rows[1][1] / rows[2][1]:.1f}×")


if __name__ == "__main__":
    main()
