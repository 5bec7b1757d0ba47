"""Label-error detection on raccoon with injected errors and a real model's out-of-sample predictions (2-fold).

    flock /tmp/cpu.lock .venv/bin/python bench/label_errors.py [--budget 200] [--per-kind 5] [--seed 0]

Raccoon (200 images, Pascal VOC) is made a two-class dataset by a fixed rule: a box is `big` when it covers at
least the median share of its image, else `small`. Then, on distinct seeded images, `--per-kind` errors of each
kind are written into a copy of the XML files: a box removed (missing), a box shifted by half its width and
half its height (misplaced; clipped to the image), a box's class swapped (swapped), a box of a random class
added where no box is (spurious). The noisy dataset is cut into two seeded halves A and B; a project with A as
train and B as valid trains the default detector (fcos_lite0, ImageNet EfficientNet-Lite0) for `--budget`
seconds, and `find_label_errors` predicts B with that model's ONNX export (held out: it never saw B); then the
same with the halves swapped. The 200 images are ranked together (scores calibrated per fold model, as
`visionloop label-errors --folds 2` does), and for each kind the recall and precision
of the top-k (k = the number injected in all) and of the top 10 % are printed (the definitions print under
the table).
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("missing", "misplaced", "swapped", "spurious")


def datasets() -> Path:
    env = os.environ.get("VISIONLOOP_DATASETS")
    return Path(env) if env else (ROOT / ".." / "shared" / "datasets").resolve()


def _boxes(root: ET.Element) -> list[ET.Element]:
    return root.findall("object")


def _xyxy(obj: ET.Element) -> list[float]:
    b = obj.find("bndbox")
    assert b is not None
    return [float(b.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")]


def _set(obj: ET.Element, box: list[float]) -> None:
    b = obj.find("bndbox")
    assert b is not None
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        b.find(k).text = str(int(round(v)))  # type: ignore[union-attr]


def _iou(a: list[float], b: list[float]) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def make_noisy(data: Path, out: Path, *, per_kind: int, seed: int) -> dict[str, str]:
    """Two-class, noisy copy of raccoon's annotations in out/annotations (images symlinked): {file: kind}."""
    rng = random.Random(seed)
    trees = {x.stem + ".jpg": ET.parse(x) for x in sorted((data / "annotations").glob("*.xml"))}
    shares = []
    for t in trees.values():
        r = t.getroot()
        w, h = float(r.findtext("size/width") or 1), float(r.findtext("size/height") or 1)
        shares += [((b[2] - b[0]) * (b[3] - b[1])) / (w * h) for b in map(_xyxy, _boxes(r))]
    median = sorted(shares)[len(shares) // 2]
    for t in trees.values():
        r = t.getroot()
        w, h = float(r.findtext("size/width") or 1), float(r.findtext("size/height") or 1)
        for o in _boxes(r):
            b = _xyxy(o)
            o.find("name").text = "big" if (b[2] - b[0]) * (b[3] - b[1]) / (w * h) >= median else "small"  # type: ignore[union-attr]
    names = list(trees)
    rng.shuffle(names)
    injected: dict[str, str] = {}
    it = iter(names)
    for kind in KINDS:
        n = 0
        while n < per_kind:
            name = next(it)
            r = trees[name].getroot()
            w, h = float(r.findtext("size/width") or 1), float(r.findtext("size/height") or 1)
            objs = _boxes(r)
            if kind == "spurious":  # a free spot for a box of 15-30 % of the image's sides
                placed = None
                for _ in range(200):
                    bw, bh = rng.uniform(0.15, 0.3) * w, rng.uniform(0.15, 0.3) * h
                    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                    cand = [x0, y0, x0 + bw, y0 + bh]
                    if all(_iou(cand, _xyxy(o)) == 0.0 for o in objs):
                        placed = cand
                        break
                if placed is None:
                    continue
                new = ET.fromstring(ET.tostring(objs[0]))
                new.find("name").text = rng.choice(["big", "small"])  # type: ignore[union-attr]
                _set(new, placed)
                r.append(new)
            else:
                o = objs[rng.randrange(len(objs))]
                if kind == "missing":
                    r.remove(o)
                elif kind == "swapped":
                    o.find("name").text = "small" if o.findtext("name") == "big" else "big"  # type: ignore[union-attr]
                else:
                    b = _xyxy(o)
                    dx, dy = (b[2] - b[0]) / 2, (b[3] - b[1]) / 2
                    sx = 1 if b[2] + dx <= w or b[0] - dx < 0 and w - b[2] > b[0] else -1
                    sy = 1 if b[3] + dy <= h or b[1] - dy < 0 and h - b[3] > b[1] else -1
                    _set(o, [min(max(b[0] + sx * dx, 0), w - 1), min(max(b[1] + sy * dy, 0), h - 1),
                             min(max(b[2] + sx * dx, 1), w), min(max(b[3] + sy * dy, 1), h)])
            injected[name] = kind
            n += 1
    (out / "annotations").mkdir(parents=True)
    for name, t in trees.items():
        t.write(out / "annotations" / (Path(name).stem + ".xml"))
    return injected


def half_project(work: Path, noisy: Path, data: Path, train: list[str], valid: list[str], tag: str):
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.versions import create_version

    store = Store.init(work / f"project-{tag}")
    for split, names in (("train", train), ("valid", valid)):
        half = work / f"{tag}-{split}"
        (half / "images").mkdir(parents=True)
        (half / "annotations").mkdir()
        for jpg in names:
            (half / "images" / jpg).symlink_to(data / "images" / jpg)
            (half / "annotations" / (Path(jpg).stem + ".xml")).symlink_to(noisy / "annotations" /
                                                                          (Path(jpg).stem + ".xml"))
        import_dataset(store, half, split=split)
    return store, create_version(store, {"schema": 1, "seed": 0, "split": {"mode": "keep"}}, workers=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=200.0, help="training seconds per fold")
    ap.add_argument("--per-kind", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--save", type=Path, default=None, help="pickle what was scored (annotations, predictions, "
                                                               "injections) here")
    ap.add_argument("--rescore", type=Path, default=None, help="score a --save file again (no training)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from visionloop.loop.label_errors import find_label_errors, rank_images
    from visionloop.train import train

    data = datasets() / "raccoon"
    t0 = time.perf_counter()
    if args.rescore is not None:
        injected, inputs = pickle.loads(args.rescore.read_bytes())
        table(injected, [(im.score, Path(im.file_name).name, im.kind) for im in rank_images(inputs)], args, t0)
        return 0
    with tempfile.TemporaryDirectory(prefix="vl-bench-le-") as tmp:
        work = Path(tmp)
        injected = make_noisy(data, work / "noisy", per_kind=args.per_kind, seed=args.seed)
        names = sorted(p.name for p in (data / "images").glob("*.jpg"))
        random.Random(args.seed + 1).shuffle(names)
        halves = [sorted(names[:len(names) // 2]), sorted(names[len(names) // 2:])]
        inputs = []
        for k, (tr, va) in enumerate(((halves[0], halves[1]), (halves[1], halves[0]))):
            store, version = half_project(work, work / "noisy", data, tr, va, f"fold{k + 1}")
            t = time.perf_counter()
            r = train(store, version.name, task="detect", weights="default", time_budget=args.budget,
                      imgsz=args.imgsz, batch=8, seed=0, name=f"fold{k + 1}", export=True)
            print(f"fold {k + 1}: trained on {len(tr)} images in {time.perf_counter() - t:.0f}s ({r.epochs} epochs, "
                  f"valid mAP50 {r.metrics.get('map50', float('nan')):.3f} against the noisy labels)", flush=True)
            res = find_label_errors(store, r.model.name, split="valid", save=False, top=len(va))
            for im in res.inputs:
                im.fold = k + 1  # calibrated per fold model, as `label-errors --folds` does
            inputs += res.inputs
            store.close()
        if args.save is not None:
            args.save.write_bytes(pickle.dumps((injected, inputs)))
        scored = [(im.score, Path(im.file_name).name, im.kind) for im in rank_images(inputs)]
        table(injected, scored, args, t0)
    return 0


def table(injected: dict[str, str], scored: list[tuple[float, str, str | None]], args: argparse.Namespace,
          t0: float) -> None:
    scored.sort(key=lambda x: -x[0])
    n = len(scored)
    total = len(injected)
    print(f"\n{n} images scored, {total} with an injected error ({args.per_kind} per kind), "
          f"{time.perf_counter() - t0:.0f}s in all\n")
    print(f"{'kind':<10} {'injected':>8} | {'top-k':>5} {'recall':>6} {'prec.':>6} | {'top10%':>6} {'recall':>6} "
          f"{'prec.':>6} | kind named right")
    for kind in (*KINDS, "all"):
        mine = {f for f, kd in injected.items() if kind in ("all", kd)}
        row = f"{kind:<10} {len(mine):>8}"
        for cut in (total, max(1, round(0.1 * n))):
            top = scored[:cut]
            found = len(mine & {f for _, f, _ in top})
            said = [f for _, f, kd in top if kind in ("all", kd)]  # listed and called this kind
            prec = sum(1 for f in said if f in injected) / len(said) if said else float("nan")
            row += f" | {cut:>5} {found / len(mine):>6.2f} {prec:>6.2f}"
        right = sum(1 for _, f, kd in scored if f in mine and kd == injected[f])
        print(f"{row} | {right} of {len(mine)}", flush=True)
    print("\nrecall: injected images of the kind in the list; precision: of the listed images whose worst finding "
          "is of the kind, the share with an injected error (any kind); kind named right: over all images")
    print("\ntop 10 images:")
    for s, f, kd in scored[:10]:
        print(f"  {s:.3f}  {f:<16} {kd or '':<10} injected: {injected.get(f, '-')}")


if __name__ == "__main__":
    raise SystemExit(main())
