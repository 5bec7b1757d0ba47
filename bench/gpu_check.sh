#!/usr/bin/env bash
# GPU check (no internet needed): 2 epochs of the default detector on raccoon on CUDA, ONNX export,
# then ONNX Runtime latency with the CUDA / TensorRT execution providers where this onnxruntime has
# them (onnxruntime-gpu; the CPU wheel has neither and the table says so). Fits well under 5 minutes
# on an H200. Run from a checkout with .venv installed and ../shared/datasets/raccoon beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY - <<'PY'
import sys, tempfile, time
from pathlib import Path
import numpy as np
sys.path.insert(0, "bench")
import torch
from train import datasets, make_project
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
from visionloop.train import train
from visionloop.store import models as registry
from visionloop.infer import Predictor, available_providers
with tempfile.TemporaryDirectory() as tmp:
    store, info = make_project(Path(tmp), datasets() / "raccoon")
    t = time.perf_counter()
    r = train(store, info.name, task="detect", epochs=2, imgsz=320, batch=16, device="cuda", name="gpu",
              progress=lambda p: p.phase == "epoch" and print(f"epoch {p.epoch}: {p.metrics}", flush=True))
    print(f"train 2 epochs on cuda + export: {time.perf_counter() - t:.1f}s  metrics {r.metrics}")
    data = store.blobs.get(registry.get(store, "gpu").export("onnx", "fp32").sha256)
    have = available_providers()
    print("onnxruntime providers:", have)
    x = np.random.default_rng(0).integers(0, 256, (1, 3, 320, 320)).astype(np.float32)
    rows = []
    for prov in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
        if prov not in have:
            rows.append((prov, "not available", "", ""))
            continue
        try:
            p = Predictor(data, providers=[prov, "CPUExecutionProvider"])
            for _ in range(10):
                p.raw(x)
            ts = []
            for _ in range(50):
                t = time.perf_counter(); p.raw(x); ts.append((time.perf_counter() - t) * 1000)
            rows.append((prov, f"{np.percentile(ts, 50):.2f}", f"{np.percentile(ts, 95):.2f}", p.providers[0]))
        except Exception as e:  # a provider that fails to start is reported, not fatal
            rows.append((prov, f"failed: {str(e).splitlines()[0][:80]}", "", ""))
    net = __import__("visionloop.train.export", fromlist=["load_net"]).load_net(store, registry.get(store, "gpu")).cuda()
    xt = torch.from_numpy(x).cuda()
    with torch.no_grad():
        for _ in range(10): net.predict_raw(xt)
        torch.cuda.synchronize(); ts = []
        for _ in range(50):
            t = time.perf_counter(); net.predict_raw(xt); torch.cuda.synchronize(); ts.append((time.perf_counter() - t) * 1000)
    rows.append(("torch eager cuda", f"{np.percentile(ts, 50):.2f}", f"{np.percentile(ts, 95):.2f}", "cuda"))
    print("| engine | p50 ms | p95 ms | ran on |\n|---|---|---|---|")
    for r_ in rows:
        print("| " + " | ".join(r_) + " |")
    store.close()
PY
