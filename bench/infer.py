"""Inference latency: ONNX Runtime (fp32, INT8) vs torch eager, at 320 and 640 px, 1 and 2 threads.

    .venv/bin/python bench/infer.py [--runs 30] [--project P --model M]

Without --project it builds the default detector (fcos_lite0, offline ImageNet backbone, 1 class)
and exports it at each size; latency does not depend on the weights. With --project/--model it
also prints the model's stored INT8 accuracy delta. Times one image per call (batch 1), after warm-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def pct(ts: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ts) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def export(net, size: int, path: Path) -> None:
    import warnings

    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.export_module(size, size).eval(), (torch.zeros(1, 3, size, size),), str(path),
                          dynamo=False, opset_version=17, input_names=["images"], output_names=["boxes", "scores"])


def quantize(src: Path, dst: Path, size: int) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)
    data = iter([rng.integers(0, 256, (1, 3, size, size)).astype(np.float32) for _ in range(8)])

    class R(CalibrationDataReader):
        def get_next(self):
            x = next(data, None)
            return None if x is None else {"images": x}

    quantize_static(str(src), str(dst), R(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sizes", default="320,640")
    ap.add_argument("--project")
    ap.add_argument("--model")
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    from visionloop.models import create, resolve

    net = create("fcos_lite0", 1, resolve()).eval()
    x_rng = np.random.default_rng(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            fp32, int8 = Path(tmp) / f"m{size}.onnx", Path(tmp) / f"m{size}.int8.onnx"
            export(net, size, fp32)
            quantize(fp32, int8, size)
            x = x_rng.integers(0, 256, (1, 3, size, size)).astype(np.float32)
            for threads in (1, 2):
                for label, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
                    o = ort.SessionOptions()
                    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
                    s = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
                    for _ in range(5):
                        s.run(None, {"images": x})
                    ts = []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        s.run(None, {"images": x})
                        ts.append(time.perf_counter() - t)
                    rows.append((size, threads, label, *pct(ts)))
                torch.set_num_threads(threads)
                xt = torch.from_numpy(x)
                with torch.no_grad():
                    for _ in range(3):
                        net.predict_raw(xt)
                    ts = []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        net.predict_raw(xt)
                        ts.append(time.perf_counter() - t)
                rows.append((size, threads, "torch eager fp32", *pct(ts)))
    print("| size | threads | engine | p50 ms | p95 ms | p99 ms | vs torch p50 |")
    print("|---|---|---|---|---|---|---|")
    for size, threads, label, p50, p95, p99 in rows:
        ref = next(r[3] for r in rows if r[0] == size and r[1] == threads and r[2] == "torch eager fp32")
        print(f"| {size} | {threads} | {label} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {ref / p50:.2f}x |")
    if args.project and args.model:
        from visionloop.store import Store
        from visionloop.store import models as registry

        with Store.open(args.project) as store:
            e = registry.get(store, args.model).export("onnx", "int8")
            print("INT8 accuracy (validation split):", e.metrics if e else "no INT8 export")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
