#!/usr/bin/env bash
# GPU check, no internet needed: the CUDA training path (the raccoon bench on cuda: ImageNet and random
# backbone, same budget), ONNX export, then latency of the exported model on ONNX Runtime with each
# execution provider this onnxruntime has (TensorRT / CUDA need onnxruntime-gpu; the table says when they
# are missing) against torch eager on the GPU.
#
#   here:               bash bench/gpu_check.sh                    (.venv, ../shared/datasets beside the checkout)
#   on a lent machine:  PY=python3 VISIONLOOP_DATASETS=.gpudata bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-30}
BUDGET=${BUDGET:-120}
export DEVICE=${DEVICE:-cuda}  # DEVICE=cpu EPOCHS=1 BUDGET=30: a dry run of this script on a CPU machine
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch, onnxruntime as ort, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'onnxruntime', ort.__version__, ort.get_available_providers())"
echo "== raccoon bench on $DEVICE: $EPOCHS epochs or ${BUDGET}s per model =="
$PY bench/train.py raccoon --device "$DEVICE" --epochs "$EPOCHS" --budget "$BUDGET" --random --workers 4
echo "== latency of the default detector (fcos_lite0, 320 px; weights do not change latency) =="
$PY - <<'PY'
import os, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, "bench")
from infer import export
from visionloop.infer import available_providers
from visionloop.models import create, resolve

dev = os.environ.get("DEVICE", "cuda")
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
net = create("fcos_lite0", 1, resolve()).eval()
x = np.random.default_rng(0).integers(0, 256, (1, 3, 320, 320)).astype(np.float32)


def timed(fn, n=100):
    for _ in range(10):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append((time.perf_counter() - t) * 1000)
    return f"{np.percentile(ts, 50):.2f}", f"{np.percentile(ts, 95):.2f}", f"{np.percentile(ts, 99):.2f}"


rows = []
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "m320.onnx"
    export(net, 320, path)
    have = available_providers()
    for prov in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
        if prov not in have:
            rows.append((f"onnxruntime {prov}", "not in this onnxruntime", "", "", ""))
            continue
        try:
            import onnxruntime as ort

            s = ort.InferenceSession(str(path), providers=[prov, "CPUExecutionProvider"])
            rows.append((f"onnxruntime {prov}", *timed(lambda: s.run(None, {"images": x})), s.get_providers()[0]))
        except Exception as e:  # a provider that fails to start is reported, not fatal
            rows.append((f"onnxruntime {prov}", f"failed: {str(e).splitlines()[0][:80]}", "", "", ""))
net = net.to(dev)
for label, dtype, batch in (("torch eager fp32", torch.float32, 1), ("torch eager fp16", torch.float16, 1),
                            ("torch eager fp16, batch 32 (ms per image)", torch.float16, 32)):
    if dtype == torch.float16 and dev != "cuda":
        continue
    m = net.to(dtype)
    xt = torch.from_numpy(np.repeat(x, batch, 0)).to(dev).to(dtype)

    def run():
        with torch.no_grad():
            m.predict_raw(xt)
        sync()

    r = timed(run, 100 if batch == 1 else 30)
    rows.append((label, *(f"{float(v) / batch:.3f}" for v in r), dev))
print("| engine (320 px) | p50 ms | p95 ms | p99 ms | ran on |\n|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
