"""Synthetic COCO datasets for the benchmarks: distinct small JPEGs and many boxes, made once and reused."""

from __future__ import annotations

from pathlib import Path

#: 80 classes with COCO's own sparse ids (1..90 with gaps), so tools that renumber categories show it
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def coco_dataset(root: Path, n: int, *, boxes_per_image: int = 10, size: tuple[int, int] = (96, 72),
                 polygons: float = 0.0, images: bool = True, seed: int = 0) -> Path:
    """Write COCO's own layout, `root/images/default/*.jpg` (distinct bytes) and
    `root/annotations/instances_default.json`, which every peer reads; returns the JSON path.

    `polygons` is the fraction of annotations that get a polygon segmentation (a quadrilateral
    inside the box); the others have `segmentation: []`.
    """
    import cv2
    import numpy as np
    import orjson

    ann_path = root / "annotations" / "instances_default.json"
    if ann_path.exists():
        return ann_path
    image_dir = root / "images" / "default"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    W, H = size
    base = np.zeros((H, W, 3), np.uint8)
    base[:] = np.linspace(30, 220, W, dtype=np.uint8)[None, :, None]
    image_entries, anns = [], []
    aid = 0
    for i in range(n):
        name = f"{i:06d}.jpg"
        if images:
            img = base.copy()
            x, y = int(rng.integers(0, W - 20)), int(rng.integers(0, H - 20))
            img[y:y + 20, x:x + 20] = rng.integers(0, 255, 3, dtype=np.uint8)
            img[0, 0] = (i % 256, (i // 256) % 256, (i // 65536) % 256)  # distinct bytes per image
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            (image_dir / name).write_bytes(buf.tobytes())
        image_entries.append({"id": i + 1, "file_name": name, "width": W, "height": H})
        for _ in range(boxes_per_image):
            aid += 1
            bw, bh = float(rng.integers(4, W // 2)), float(rng.integers(4, H // 2))
            bx, by = float(rng.integers(0, W - bw)), float(rng.integers(0, H - bh))
            seg: list = []
            if polygons and rng.random() < polygons:
                seg = [[bx, by + bh / 2, bx + bw / 2, by, bx + bw, by + bh / 2, bx + bw / 2, by + bh]]
            anns.append({"id": aid, "image_id": i + 1, "category_id": COCO_IDS[int(rng.integers(0, 80))],
                         "bbox": [bx, by, bw, bh], "area": bw * bh, "iscrowd": 0, "segmentation": seg})
    cats = [{"id": c, "name": f"class_{c:02d}", "supercategory": "thing"} for c in COCO_IDS]
    ann_path.write_bytes(orjson.dumps({"info": {"description": "visionloop synthetic"}, "licenses": [],
                                       "categories": cats, "images": image_entries, "annotations": anns}))
    return ann_path


def peak_rss_mb() -> float:
    """This process's own peak RSS. (ru_maxrss would include the parent's peak: Linux keeps it across exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
