"""Teach a concept in seconds: raccoon crops vs background crops from ../shared/datasets/raccoon.

    .venv/bin/python bench/concepts.py [--train 10] [--held-out 40]

Crops are cut deterministically from the VOC boxes (the first raccoon of each photo) and from the largest
square of each photo that touches no raccoon box (side ≥ 64 px). The first `--train` of each kind teach
the concept; the next `--held-out` of each kind are classified. It prints, in markdown tables:
- accuracy on the held-out crops for the logistic concept (positives + negatives) and the prototype
  (positives only);
- times: loading the embedder (torch build + ONNX export, ONNX Runtime session), embedding the 20 training
  crops in torch eager and on ONNX Runtime, fitting, and train + predict end to end after the model is loaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RACCOON = ROOT.parent / "shared" / "datasets" / "raccoon"


def boxes(xml: Path) -> list[tuple[int, int, int, int]]:
    out = []
    for b in ET.parse(xml).getroot().iter("bndbox"):
        out.append(tuple(int(float(b.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax")))
    return out  # type: ignore[return-value]


def background_square(w: int, h: int, bxs: list[tuple[int, int, int, int]], min_side: int = 64):
    """The largest square (on a 16 px grid, scanning sides from large to small) that touches no box."""
    for side in range(min(w, h) // 16 * 16, min_side - 1, -16):
        for y in range(0, h - side + 1, 16):
            for x in range(0, w - side + 1, 16):
                if all(x + side <= b[0] or b[2] <= x or y + side <= b[1] or b[3] <= y for b in bxs):
                    return x, y, x + side, y + side
    return None


def make_crops(root: Path, out: Path, limit: int) -> tuple[list[Path], list[Path]]:
    """Up to `limit` raccoon crops and `limit` background crops, in photo-number order."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    pos: list[Path] = []
    neg: list[Path] = []
    for n in range(1, 201):
        xml = root / "annotations" / f"raccoon-{n}.xml"
        img = root / "images" / f"raccoon-{n}.jpg"
        if not xml.exists() or not img.exists():
            continue
        im = cv2.imread(str(img))
        if im is None:
            continue
        h, w = im.shape[:2]
        bxs = boxes(xml)
        if len(pos) < limit and bxs:
            x0, y0, x1, y1 = bxs[0]
            p = out / f"raccoon-{n}.png"
            cv2.imwrite(str(p), im[max(0, y0):y1, max(0, x0):x1])
            pos.append(p)
        sq = background_square(w, h, bxs) if len(neg) < limit else None
        if sq is not None:
            p = out / f"background-{n}.png"
            cv2.imwrite(str(p), im[sq[1]:sq[3], sq[0]:sq[2]])
            neg.append(p)
        if len(pos) >= limit and len(neg) >= limit:
            break
    return pos, neg


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--held-out", type=int, default=40)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from visionloop.infer import concepts
    from visionloop.infer.embed import OnnxEmbedder, read_rgb
    from visionloop.models.embedder import Embedder, export_embedder

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        pos, neg = make_crops(RACCOON, Path(tmp), args.train + args.held_out)
        k = args.train
        tr_pos, tr_neg, ho_pos, ho_neg = pos[:k], neg[:k], pos[k:], neg[k:]
        t0 = time.perf_counter()
        emb = Embedder.create()
        t_torch_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        onnx_bytes = export_embedder(emb)
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        ort_emb = OnnxEmbedder(onnx_bytes, threads=2)
        t_ort_load = time.perf_counter() - t0

        train_files = tr_pos + tr_neg
        images = [read_rgb(p) for p in train_files]
        x = torch.from_numpy(np.stack([ort_emb.preprocess(im) for im in images]))
        emb.embed(x[:2])  # warm-up
        ort_emb.embed(images[:2])
        t0 = time.perf_counter()
        v_torch = emb.embed(x).numpy()
        t_torch = time.perf_counter() - t0
        t0 = time.perf_counter()
        v_ort = ort_emb.embed(images)
        t_ort = time.perf_counter() - t0
        parity = float(np.abs(v_torch - v_ort).max())

        # end to end after the model is loaded: decode + embed (ONNX Runtime) + fit, then predict the held-out
        t0 = time.perf_counter()
        vp, vn = ort_emb.embed_files(tr_pos), ort_emb.embed_files(tr_neg)
        head = concepts.fit(vp, vn)
        t_train = time.perf_counter() - t0
        proto = concepts.fit(vp)
        t0 = time.perf_counter()
        ho = ho_pos + ho_neg
        vh = ort_emb.embed_files(ho)
        preds = concepts.predict({"raccoon": head}, vh, [str(p) for p in ho])
        t_pred = time.perf_counter() - t0
        truth = np.array([1] * len(ho_pos) + [0] * len(ho_neg), bool)
        acc_log = float((np.array([p.answers[0].match for p in preds]) == truth).mean())
        acc_proto = float((proto.decide(vh) == truth).mean())
        t0 = time.perf_counter()
        concepts.fit(vp, vn)
        t_fit = time.perf_counter() - t0

    print(f"\n## Concept: raccoon vs background crops ({k} + {k} to train, {len(ho_pos)} + {len(ho_neg)} held out)\n")
    print("| concept model | trained on | held-out accuracy | correct |")
    print("|---|---|---:|---:|")
    n_ok = int(round(acc_log * len(ho)))
    print(f"| logistic regression | {k} pos + {k} neg | {acc_log:.3f} | {n_ok}/{len(ho)} |")
    print(f"| prototype (threshold {proto.threshold:.3f}) | {k} pos | {acc_proto:.3f} | "
          f"{int(round(acc_proto * len(ho)))}/{len(ho)} |")
    print("\n## Times (2 threads)\n")
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| build torch embedder + load offline weights | {t_torch_load:.2f} |")
    print(f"| export embedder to ONNX (once per project) | {t_export:.2f} |")
    print(f"| ONNX Runtime session | {t_ort_load:.2f} |")
    print(f"| embed {len(images)} crops, torch eager | {t_torch:.3f} |")
    print(f"| embed {len(images)} crops, ONNX Runtime | {t_ort:.3f} (torch/ORT {t_torch / t_ort:.2f}x) |")
    print(f"| max abs difference torch vs ORT embeddings | {parity:.2e} |")
    print(f"| fit (logistic, Newton) | {t_fit:.4f} |")
    print(f"| **train** (decode + embed + fit {len(train_files)} crops) | **{t_train:.3f}** |")
    print(f"| predict {len(ho)} held-out crops (decode + embed + score) | {t_pred:.3f} |")
    print(f"| train + predict | {t_train + t_pred:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
