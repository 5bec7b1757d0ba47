"""Gallery latency on this machine: each model at its input size, 1 and 2 ONNX Runtime threads, whole
prediction (decode excluded: preprocess, inference, post-processing), and through the HTTP API.

    .venv/bin/python bench/gallery.py [--runs 30] [--models text-ocr]

Images ship in scikit-image (astronaut: the face detector, coffee: the classifier) or are rendered here
(a line of text: OCR). The API columns are a real `visionloop serve` on loopback (one client on one
keep-alive connection, sequential requests, JPEG bytes in, JSON out: adds upload, decode and serialisation),
started twice: with its default of 2 inference workers of 1 ONNX Runtime thread each (compare with the
1-thread column), then `--model-workers 1 --threads 2` (compare with the 2-thread column). OCR, a pipeline,
runs each whole image through one predictor of that many threads. "API overhead" is each API p50 minus its
in-process p50: upload, decode, queueing and JSON.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def pct(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def timed(fn, runs: int) -> list[float]:
    for _ in range(3):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--models", default="imagenet-classifier,face-detector,text-ocr",
                    help="comma-separated gallery models to time")
    args = ap.parse_args()

    import httpx
    from skimage import data as skdata

    from visionloop import gallery
    from visionloop.gallery.add import load_predictor
    from visionloop.serve import Settings
    from visionloop.serve.background import BackgroundServer
    from visionloop.store import Store

    text = np.full((160, 700, 3), 255, np.uint8)
    cv2.putText(text, "PILL COUNT 17", (20, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.8, (0, 0, 0), 4)
    images = {"imagenet-classifier": skdata.coffee(), "face-detector": skdata.astronaut(), "text-ocr": text}
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    if unknown := [m for m in wanted if m not in images]:
        raise SystemExit(f"unknown --models {', '.join(unknown)}: pick from {', '.join(images)}")
    images = {m: images[m] for m in wanted}
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "p"
        with Store.init(project) as store:
            infos = {name: gallery.add(store, name) for name in images}
            files = {name: {e.format: store.blobs.get(e.sha256) for e in info.exports} for name, info in infos.items()}
        for name, img in images.items():
            f = dict(files[name])
            row = {"model": name, "input": f"{infos[name].input_size[0]}", "image": f"{img.shape[1]}x{img.shape[0]}"}
            for threads in (1, 2):
                p = load_predictor(f["onnx"], {k: v for k, v in f.items() if k != "onnx"}, threads=threads)
                row[f"t{threads}"] = pct(timed(lambda p=p, img=img: p.predict(img), args.runs))
                del p
            rows.append(row)
        # the server's default (2 workers x 1 thread), then one worker of 2 threads
        for key, settings in (("api1", Settings(refresh_s=60, url_allow_list=[])),
                              ("api2", Settings(refresh_s=60, url_allow_list=[], workers=1, threads=2))):
            with BackgroundServer(project, settings) as server, \
                    httpx.Client(timeout=60) as client:  # one keep-alive connection, as an app would hold
                for row in rows:
                    img = images[row["model"]]
                    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                    body = jpg.tobytes()

                    def call(name=row["model"], body=body) -> None:
                        r = client.post(f"{server.url}/v1/models/{name}/predict", content=body,
                                        headers={"content-type": "image/jpeg"})
                        r.raise_for_status()
                        assert r.json()["images"][0]["predictions"], f"{name}: no prediction through the API"

                    row[key] = pct(timed(call, args.runs))
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after on {os.cpu_count()} cores"
    print(f"\ngallery latency, ms (p50 / p95 over {args.runs} runs, after 3 warm-up; {load})\n")
    print("| model | input | image | in-process 1 thread | in-process 2 threads | API, 2 workers x 1 thread "
          "| API, 1 worker x 2 threads | API overhead p50 (1 / 2 threads) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['input']} | {r['image']} | {r['t1'][0]:.1f} / {r['t1'][1]:.1f} | "
              f"{r['t2'][0]:.1f} / {r['t2'][1]:.1f} | {r['api1'][0]:.1f} / {r['api1'][1]:.1f} | "
              f"{r['api2'][0]:.1f} / {r['api2'][1]:.1f} | {r['api1'][0] - r['t1'][0]:+.1f} / "
              f"{r['api2'][0] - r['t2'][0]:+.1f} |")


if __name__ == "__main__":
    main()
