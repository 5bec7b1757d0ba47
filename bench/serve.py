"""Serving: the same ONNX detector served by visionloop (batching off / on), LitServe and a plain FastAPI +
ONNX Runtime endpoint, under 1, 8 and 32 concurrent clients on loopback; plus raw ONNX Runtime.

    .venv/bin/python bench/serve.py [--seconds 15] [--requests 600] [--clients 1,8,32] [--imgsz 320]
    .venv/bin/python bench/serve.py --soak [--soak-requests 10000]

Every server runs in its own process and gets the same request: JSON `{"images": [{"base64": …}]}` of a
real raccoon photo (cycled over 32), thresholds 0.25 / NMS 0.6, the model's own letterbox and NMS. The
client is one asyncio process (aiohttp; --client httpx) on the same 2-core machine, so every server shares
the CPU with it alike. The servers take turns, in slices, the others paused (SIGSTOP); at 1 client the
pipeline without HTTP (its own process, `--run raw`) takes turns too, and at 8 and 32 clients so does the
same pipeline from as many closed-loop callers on one one-thread session per core: the latency no server can
beat on this machine. Each level runs for at most --seconds or --requests, after a warm-up; the HTTP floor
(the same body to a route without a model) closes the run. LitServe (a peer for measurement only) is installed
by this script with `pip install --target` into bench/.cache/, not into the project's environment.

The model: fcos_lite0 (offline ImageNet EfficientNet-Lite0 + FPN) trained one step on synthetic shapes
and exported by visionloop's own export at --imgsz (latency does not depend on the weights).

--soak: 10,000 requests to visionloop (--max-batch, 8 unless given) from 32 clients, 5 % of them corrupt, oversized or of
the wrong type, and some clients hanging up mid-body: counts 5xx for valid requests and the server's
RSS after the first and the last 1,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
LITSERVE = "litserve==0.2.19"
PY = sys.executable
RACCOON = Path(os.environ.get("VISIONLOOP_DATASETS", ROOT.parent / "shared" / "datasets")) / "raccoon" / "images"


# -- the model and the inputs ------------------------------------------------------------------------
def build_model(work: Path, imgsz: int) -> tuple[Path, str]:
    from visionloop import formats
    from visionloop.demo import synthetic
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.store import models as registry
    from visionloop.train import train
    from visionloop.versions import create_version

    split = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}
    formats.write(synthetic.shapes(12, seed=0, size=(imgsz, imgsz), folder=work / "render"), work / "coco",
                  format="coco", classes=synthetic.classes())
    with Store.init(work / "project") as store:
        import_dataset(store, work / "coco")
        v = create_version(store, split, workers=0)
        train(store, v.name, task="detect", epochs=1, max_steps=1, imgsz=imgsz, batch=4, name="bench")
        info = registry.get(store, "bench")
        registry.promote(store, "bench", "ga")
        onnx = registry.blob_file(store, info.export("onnx", "fp32").sha256)
    dst = work / "model.onnx"
    shutil.copy(onnx, dst)
    return work / "project", str(dst)


def photos(n: int = 32) -> list[bytes]:
    files = sorted(RACCOON.glob("*.jpg"))[:n]
    if not files:
        sys.exit(f"no raccoon photos in {RACCOON} (set VISIONLOOP_DATASETS)")
    return [f.read_bytes() for f in files]


def bodies(images: list[bytes]) -> list[bytes]:
    return [json.dumps({"images": [{"base64": base64.b64encode(d).decode()}]}).encode() for d in images]


# -- the servers (each its own process: `bench/serve.py --run NAME ...`) -------------------------------
def run_plain(onnx: str, port: int) -> None:
    """What a developer writes by hand: FastAPI, one ORT session, a sync endpoint (FastAPI's thread pool)."""
    import cv2
    import orjson
    import uvicorn
    from fastapi import Body, FastAPI, Request, Response

    from visionloop.infer import Predictor

    app = FastAPI()
    predictor = Predictor(onnx)

    @app.post("/predict")
    def predict(body: dict = Body(...)) -> dict:  # noqa: B008
        out = []
        for im in body["images"]:
            bgr = cv2.imdecode(np.frombuffer(base64.b64decode(im["base64"]), np.uint8), cv2.IMREAD_COLOR)
            out.append(predictor.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), conf=0.25, iou=0.6).to_json())
        return {"images": out}

    @app.post("/null")
    async def null(request: Request) -> Response:
        """The HTTP floor: the same body read, parsed and base64-decoded, no model, a small answer."""
        images = orjson.loads(await request.body())["images"]
        sizes = [len(base64.b64decode(im["base64"])) for im in images]
        return Response(orjson.dumps({"images": [{"bytes": n, "predictions": []} for n in sizes]}),
                        media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


try:  # only in the LitServe server process (its PYTHONPATH has bench/.cache/litserve)
    import litserve as _ls
except ImportError:
    _ls = None

if _ls is not None:
    class LitDetector(_ls.LitAPI):
        """LitServe's four methods over the same predictor (module level: LitServe pickles it into workers)."""

        def setup(self, device):
            from visionloop.infer import Predictor

            self.p = Predictor(os.environ["BENCH_ONNX"])

        def decode_request(self, request):
            import cv2

            data = base64.b64decode(request["images"][0]["base64"])
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            x, m = self.p.preprocess(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            return x[0], m, bgr.shape[1], bgr.shape[0]

        def batch(self, inputs):
            return inputs

        def predict(self, inputs):
            items = inputs if isinstance(inputs, list) else [inputs]
            boxes, scores = self.p.raw(np.stack([it[0] for it in items]))
            out = [(boxes[i], scores[i], *it[1:]) for i, it in enumerate(items)]
            return out if isinstance(inputs, list) else out[0]

        def unbatch(self, output):
            return output

        def encode_response(self, output):
            from visionloop.infer.post import postprocess, unletterbox

            b, s, m, w, h = output
            boxes, conf, labels = postprocess(b, s, conf=0.25, iou=0.6)
            boxes = unletterbox(boxes, m, w, h)
            return {"images": [{"detections": [{"box": [round(float(v), 2) for v in bb], "class_id": int(c),
                                                "score": round(float(sc), 6)}
                                               for bb, sc, c in zip(boxes, conf, labels, strict=True)]}]}


def run_litserve(onnx: str, port: int, max_batch: int, wait_ms: float) -> None:
    """LitServe batches when max_batch > 1 (its own batch_timeout)."""
    os.environ["BENCH_ONNX"] = onnx
    kw = {"max_batch_size": max_batch, "batch_timeout": wait_ms / 1000}
    try:
        api, server_kw = LitDetector(**kw), {}
    except TypeError:  # older LitServe: batching options on the server
        api, server_kw = LitDetector(), kw
    server = _ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60, **server_kw)
    server.run(port=port, host="127.0.0.1", generate_client_file=False, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, argv: list[str], port: int, ready: str, env: dict[str, str] | None = None) -> None:
        self.port, self.ready = port, ready
        self.log = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=self.log, stderr=self.log,
                                  start_new_session=True)

    def wait(self, timeout: float = 120) -> None:
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.p.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{self.ready}", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        """RSS of the server process and its children (LitServe runs workers), in MB."""
        pids = [self.p.pid]
        try:
            out = subprocess.run(["pgrep", "-g", str(self.p.pid)], capture_output=True, text=True).stdout
            pids = [int(x) for x in out.split()] or pids
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def pause(self, on: bool) -> None:
        """SIGSTOP / SIGCONT the server's process group: a server waiting for its turn uses no CPU (LitServe's
        workers poll their queues even when idle; every server has timers), so its idling does not fall on
        the figures of the one being measured."""
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGSTOP if on else signal.SIGCONT)

    def stop(self) -> None:
        self.pause(False)
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def litserve_path() -> str:
    target = CACHE / "litserve"
    if not (target / "litserve").is_dir():
        print(f"installing {LITSERVE} into {target} (a peer for this benchmark only)", file=sys.stderr)
        subprocess.run([PY, "-m", "pip", "install", "-q", "--target", str(target), "--no-deps", LITSERVE,
                        "pyzmq"], check=True)
    return str(target)


def start(kind: str, project: Path, onnx: str, **kw) -> Proc:
    port = free_port()
    me = [PY, str(Path(__file__).resolve())]
    if kind == "visionloop":
        cli = [PY, "-m", "visionloop.cli.main", "serve", "-p", str(project), "--port", str(port),
               "--max-batch", str(kw["max_batch"]), "--max-wait-ms", str(kw.get("wait_ms", 0)),
               "--queue-size", str(kw.get("queue", 256))]
        cli += [a for k, v in kw.get("extra", {}).items() for a in ((k,) if v is None else (k, str(v)))]
        proc = Proc(cli, port, "/readyz")
    elif kind == "plain":
        proc = Proc([*me, "--run", "plain", "--onnx", onnx, "--port", str(port)], port, "/docs")
    else:
        env = {"PYTHONPATH": litserve_path() + os.pathsep + str(ROOT / "src")}
        proc = Proc([*me, "--run", "litserve", "--onnx", onnx, "--port", str(port), "--max-batch",
                     str(kw["max_batch"]), "--wait-ms", str(kw.get("wait_ms", 5))], port, "/health", env)
    proc.wait()
    return proc


# -- the client --------------------------------------------------------------------------------------------
CLIENT = "aiohttp"  # --client


async def load(url: str, payloads: list[bytes], clients: int, seconds: float, requests: int,
               warmup: int = 10) -> dict:
    """`clients` closed-loop clients on keep-alive connections, each sending its next request when its answer
    came. aiohttp by default: on this machine httpx itself costs ~2 ms more per request (bench/serve.py
    --floor shows both), CPU the servers then lose at 8 and 32 clients and latency no server can avoid."""
    lat: list[float] = []
    errors = 0
    sent = 0
    headers = {"content-type": "application/json"}
    if CLIENT == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        client = httpx.AsyncClient(timeout=60, limits=limits)

        async def post(body: bytes) -> int:
            return (await client.post(url, content=body, headers=headers)).status_code
    else:
        import aiohttp

        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients),
                                       timeout=aiohttp.ClientTimeout(total=60))

        async def post(body: bytes) -> int:
            async with client.post(url, data=body, headers=headers) as r:
                await r.read()
                return r.status
    try:
        for i in range(warmup):
            await post(payloads[i % len(payloads)])
        end = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal sent, errors
            i = k
            while sent < requests and time.perf_counter() < end:
                sent += 1
                t = time.perf_counter()
                status = await post(payloads[i % len(payloads)])
                lat.append(time.perf_counter() - t)
                errors += status != 200
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        took = time.perf_counter() - t0
    finally:
        await (client.aclose() if CLIENT == "httpx" else client.close())
    a = np.asarray(lat) * 1000
    return {"n": len(lat), "rps": len(lat) / took, "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)), "errors": errors,
            "lat": lat, "took": took}


class RawPipeline:
    """The pipeline of one image (decode, letterbox, run, NMS) without HTTP, in its own fresh process like the
    servers (`--run raw`), timed in slices when its turn comes and paused (SIGSTOP) between turns. One caller on a
    `threads`-thread session (a lone client's baseline), or `callers` closed-loop callers sharing `workers`
    one-thread sessions (visionloop's default layout): the latency no server can beat at that concurrency here."""

    def __init__(self, onnx: str, threads: int, callers: int = 1, workers: int = 1) -> None:
        self.lat: list[float] = []
        self.turns: list[float] = []  # each turn's p50 (ms)
        self.took = 0.0
        self.p = subprocess.Popen([PY, str(Path(__file__).resolve()), "--run", "raw", "--onnx", onnx, "--threads",
                                   str(threads), "--callers", str(callers), "--workers", str(workers)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.run(0.5, 5 * callers)  # loaded and warm
        self.lat.clear()
        self.took = 0.0
        self.turns.clear()

    def run(self, seconds: float, requests: int) -> None:
        assert self.p.stdin is not None and self.p.stdout is not None
        os.killpg(self.p.pid, signal.SIGCONT)
        self.p.stdin.write(f"{seconds} {requests}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the in-process pipeline's process exited")
        answer = json.loads(line)
        self.lat += answer["lat"]
        self.turns.append(float(np.percentile(answer["lat"], 50) * 1000))
        self.took += answer["took"]
        os.killpg(self.p.pid, signal.SIGSTOP)

    def p50(self) -> float:
        return float(np.percentile(self.lat, 50) * 1000)

    def summary(self) -> dict:
        a = np.asarray(self.lat) * 1000
        return {"n": len(a), "rps": len(a) / self.took, "p50": float(np.percentile(a, 50)),
                "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)), "errors": 0}

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGCONT)
            self.p.kill()
            self.p.wait()


def run_raw(onnx: str, threads: int, callers: int, workers: int) -> None:
    """`--run raw`: for each `SECONDS REQUESTS` line on stdin, run the pipeline image by image from `callers`
    closed-loop callers over `workers` sessions of `threads` threads, and answer one JSON line: each image's
    latency (s, from its caller's hand-off to its answer) and the slice's wall time."""
    import queue
    import threading

    import cv2

    from visionloop.infer import Predictor

    images = photos()
    sessions = [Predictor(onnx, threads=threads) for _ in range(workers)]
    jobs: queue.SimpleQueue = queue.SimpleQueue()

    def worker(p: Predictor) -> None:
        while (job := jobs.get()) is not None:
            data, done = job
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            p.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), conf=0.25, iou=0.6)
            done.set()

    pool = [threading.Thread(target=worker, args=(p,), daemon=True) for p in sessions]
    for t in pool:
        t.start()
    for line in sys.stdin:
        seconds, requests = float(line.split()[0]), int(line.split()[1])
        lat: list[float] = []
        end = time.perf_counter() + seconds

        def caller(k: int, lat: list[float] = lat, end: float = end, requests: int = requests) -> None:
            i = k
            while time.perf_counter() < end and len(lat) < requests:
                done = threading.Event()
                t = time.perf_counter()
                jobs.put((images[i % len(images)], done))
                done.wait()
                lat.append(time.perf_counter() - t)
                i += callers

        t0 = time.perf_counter()
        if callers == 1:
            caller(0)
        else:
            threads_ = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
            for t in threads_:
                t.start()
            for t in threads_:
                t.join()
        print(json.dumps({"lat": lat, "took": time.perf_counter() - t0}), flush=True)


def raw_ort(onnx: str, images: list[bytes], seconds: float, threads: int | None = None) -> dict:
    """In-process, no HTTP: the full pipeline per image (decode, letterbox, run, NMS), and session.run alone
    at batch 1 and 8."""
    import cv2

    from visionloop.infer import Predictor

    p = Predictor(onnx, threads=threads)
    rgbs = [cv2.cvtColor(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for d in images]
    xs = [p.preprocess(r)[0] for r in rgbs]
    out = {}
    for _ in range(5):
        p.raw(xs[0])

    def timed(fn, n_per_call: int = 1) -> tuple[list[float], float]:
        ts, t_end, i = [], time.perf_counter() + seconds, 0
        t0 = time.perf_counter()
        while time.perf_counter() < t_end and len(ts) < 2000:
            t = time.perf_counter()
            fn(i)
            ts.append(time.perf_counter() - t)
            i += 1
        return ts, len(ts) * n_per_call / (time.perf_counter() - t0)

    def pipeline(i: int) -> None:
        d = images[i % len(images)]
        bgr = cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR)
        p.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), conf=0.25, iou=0.6)

    ts, ips = timed(pipeline)
    out["pipeline"] = (float(np.percentile(ts, 50) * 1000), ips)
    ts, ips = timed(lambda i: p.raw(xs[i % len(xs)]))
    out["run1"] = (float(np.percentile(ts, 50) * 1000), ips)
    for b in (2, 4, 8):
        batch = np.concatenate([xs[(j) % len(xs)] for j in range(b)])
        ts, ips = timed(lambda i, batch=batch: p.raw(batch), b)
        out[f"run{b}"] = (float(np.percentile(ts, 50) * 1000), ips)
    return out


# -- soak ---------------------------------------------------------------------------------------------------
async def hang_up(port: int, body: bytes) -> None:
    """Send the headers and half the body, then close the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/models/detect/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.close()


async def soak(proc: Proc, payloads: list[bytes], total: int, clients: int, max_s: float) -> dict:
    import httpx

    url = f"http://127.0.0.1:{proc.port}/v1/models/detect/predict"
    rng = random.Random(0)
    pdf = b"%PDF-1.4\n" + bytes(5000)
    corrupt = [json.dumps({"images": [{"base64": base64.b64encode(d[: len(d) // 3]).decode()}]}).encode()
               for d in (base64.b64decode(json.loads(p)["images"][0]["base64"]) for p in payloads[:4])]
    bad = {"corrupt": corrupt, "wrong type": [json.dumps({"images": [{"base64": base64.b64encode(pdf).decode()}]
                                                          }).encode()],
           "oversized": [b"x" * (3 * 1024 * 1024)]}
    counts = {"valid": 0, "valid_5xx": 0, "valid_other": 0, "valid_failed": 0, "bad": 0, "bad_5xx": 0,
              "hung_up": 0}
    codes: dict[str, dict[int, int]] = {k: {} for k in bad}
    rss: dict[str, float] = {}
    done = 0
    lat: list[float] = []
    end = time.perf_counter() + max_s
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        async def worker(k: int) -> None:
            nonlocal done
            while done < total and time.perf_counter() < end:
                done += 1
                n = done
                roll = rng.random()
                if roll < 0.05:
                    kind = rng.choice(sorted(bad))
                    counts["bad"] += 1
                    try:
                        r = await c.post(url, content=rng.choice(bad[kind]),
                                         headers={"content-type": "application/json"})
                        code = r.status_code
                    except httpx.TransportError:  # an early 413 closes the connection while the client writes
                        code = 0
                    counts["bad_5xx"] += code >= 500
                    codes[kind][code] = codes[kind].get(code, 0) + 1
                elif roll < 0.07:
                    await hang_up(proc.port, payloads[n % len(payloads)])
                    counts["hung_up"] += 1
                else:
                    t = time.perf_counter()
                    counts["valid"] += 1
                    try:
                        r = await c.post(url, content=payloads[n % len(payloads)],
                                         headers={"content-type": "application/json"})
                    except httpx.TransportError:
                        counts["valid_failed"] += 1
                        continue
                    lat.append(time.perf_counter() - t)
                    counts["valid_5xx"] += r.status_code >= 500
                    counts["valid_other"] += r.status_code != 200 and r.status_code < 500
                if n == 1000:
                    rss["after first 1,000"] = proc.rss_mb()
                if n == total - 1000:
                    rss["before last 1,000"] = proc.rss_mb()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        took = time.perf_counter() - t0
    rss["after last"] = proc.rss_mb()
    alive = proc.p.poll() is None
    a = np.asarray(lat) * 1000
    return {"requests": done, "seconds": took, **counts, "codes": codes, "rss_mb": rss, "alive": alive,
            "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


# -- main -----------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", choices=["plain", "litserve", "raw"], help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--callers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--wait-ms", type=float, default=None, help="visionloop/LitServe batch wait (default: measured)")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--rounds", type=int, default=3, help="slices per cell, the servers taking turns")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--only", default="", help="comma list of: raw,vl-off,vl-nosolo,vl-on,litserve,plain")
    ap.add_argument("--sweep", action="store_true", help="visionloop's batching and threading settings (--grid)")
    ap.add_argument("--grid", default="1:0:1,4:0:1,8:0:1,8:5:1,1:0:2,4:0:2,8:0:2",
                    help="max_batch:max_wait_ms:inference_threads[:ort_threads] cells for --sweep")
    ap.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp", help="the load generator's library")
    ap.add_argument("--soak", action="store_true")
    ap.add_argument("--soak-requests", type=int, default=10_000)
    ap.add_argument("--soak-seconds", type=float, default=600)
    args = ap.parse_args()
    global CLIENT
    CLIENT = args.client
    if args.run == "plain":
        run_plain(args.onnx, args.port)
        return 0
    if args.run == "raw":
        run_raw(args.onnx, args.threads, args.callers, args.workers)
        return 0
    if args.run == "litserve":
        run_litserve(args.onnx, args.port, args.max_batch, args.wait_ms if args.wait_ms is not None else 5)
        return 0

    sys.path.insert(0, str(ROOT / "src"))
    work = Path(tempfile.mkdtemp(prefix="vl-bench-serve-"))
    try:
        t = time.perf_counter()
        project, onnx = build_model(work, args.imgsz)
        print(f"model: fcos_lite0 at {args.imgsz} px, built in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        images = photos()
        payloads = bodies(images)
        levels = [int(c) for c in args.clients.split(",")]
        only = set(args.only.split(",")) if args.only else {"raw", "vl-off", "vl-nosolo", "vl-on", "litserve", "plain"}
        print(f"\n{os.cpu_count()} CPUs; {len(images)} raccoon photos "
              f"({np.mean([len(d) for d in images]) / 1024:.0f} KB JPEG on average), one image per request, "
              f"JSON base64; at most {args.seconds:.0f} s or {args.requests} requests per cell\n")

        if args.soak:
            proc = start("visionloop", project, onnx, max_batch=args.max_batch,
                         wait_ms=args.wait_ms if args.wait_ms is not None else 0,
                         extra={"--max-body-mb": 2})
            try:
                res = asyncio.run(soak(proc, payloads, args.soak_requests, 32, args.soak_seconds))
            finally:
                proc.stop()
            print("| soak | value |\n|---|---|")
            for k, v in res.items():
                print(f"| {k} | {v if not isinstance(v, float) else round(v, 1)} |")
            return 0 if res["valid_5xx"] == 0 and res["valid_failed"] == 0 and res["alive"] else 1

        raws: dict[int, dict] = {}
        if "raw" in only:
            names = {"pipeline": "decode + letterbox + run + NMS, one image", "run1": "session.run, batch 1",
                     "run2": "session.run, batch 2", "run4": "session.run, batch 4", "run8": "session.run, batch 8"}
            print("| raw ONNX Runtime, in process, one caller | ORT threads | p50 ms | images/s |\n|---|---:|---:|---:|")
            for threads in (1, os.cpu_count() or 1):
                raws[threads] = raw_ort(onnx, images, min(args.seconds, 8), threads)
                for k, (p50, ips) in raws[threads].items():
                    print(f"| {names[k]} | {threads} | {p50:.1f} | {ips:.1f} |")
            print()

        if args.sweep:
            print("| visionloop max_batch | max_wait_ms | inference threads × ORT threads | clients | req/s | p50 ms | "
                  "p95 ms | p99 ms |\n|---:|---:|---|---:|---:|---:|---:|---:|")
            grid = [tuple(float(v) for v in cell.split(":")) for cell in args.grid.split(",")]
            for mb, wait, workers, *more in grid:
                mb, workers = int(mb), int(workers)
                threads = int(more[0]) if more else max(1, (os.cpu_count() or 1) // workers)
                proc = start("visionloop", project, onnx, max_batch=mb, wait_ms=wait,
                             extra={"--model-workers": workers, "--threads": threads})
                try:
                    for n in levels:
                        r = asyncio.run(load(f"http://127.0.0.1:{proc.port}/v1/models/detect/predict", payloads, n,
                                             args.seconds, args.requests))
                        print(f"| {mb} | {wait:g} | {workers} × {threads} | {n} | {r['rps']:.1f} | {r['p50']:.1f} | "
                              f"{r['p95']:.1f} | {r['p99']:.1f} |", flush=True)
                finally:
                    proc.stop()
            return 0

        from visionloop.serve.settings import Settings

        default = Settings()
        wait = args.wait_ms if args.wait_ms is not None else default.max_wait_ms
        configs = [
            ("vl-off", "visionloop, batching off (the CPU default)", "visionloop", {"max_batch": 1}, "/v1/models/detect/predict"),
            ("vl-nosolo", "visionloop, batching off, --no-solo", "visionloop",
             {"max_batch": 1, "extra": {"--no-solo": None}}, "/v1/models/detect/predict"),
            ("vl-on", f"visionloop, batching on ({args.max_batch}, {wait:g} ms)", "visionloop",
             {"max_batch": args.max_batch, "wait_ms": wait}, "/v1/models/detect/predict"),
            ("litserve", f"LitServe ({args.max_batch}, 5 ms)", "litserve", {"max_batch": args.max_batch},
             "/predict"),
            ("litserve1", "LitServe, batching off", "litserve", {"max_batch": 1}, "/predict"),
            ("plain", "plain FastAPI + ONNX Runtime", "plain", {}, "/predict"),
        ]
        rows = []
        servers = []
        turns: dict[str, list[float]] = {}  # one client: each server's p50 per round
        lone: dict[int, RawPipeline] = {}
        bound: dict[int, RawPipeline] = {}  # n callers without HTTP on one-thread sessions, one per core
        cores = os.cpu_count() or 1
        try:
            for key, label, kind, kw, path in configs:
                if key.rstrip("1") not in only:
                    continue
                try:
                    servers.append((label, start(kind, project, onnx, **kw), path))
                except RuntimeError as e:
                    print(f"{label}: {e}", file=sys.stderr)
            # the servers take turns, in alternating order, for --rounds slices of each cell: other load on the
            # machine then falls on all of them alike instead of on whichever ran last
            # a lone client's baseline, the pipeline without HTTP in a process of its own, takes its turns among
            # the servers too (this machine's speed drifts by tens of % within minutes: only interleaved figures
            # compare)
            if 1 in levels:
                lone = {t: RawPipeline(onnx, t) for t in raws}
            if "raw" in only:
                bound = {n: RawPipeline(onnx, 1, callers=n, workers=cores) for n in levels if n > 1}
            for n in levels:
                acc = {label: {"lat": [], "took": 0.0, "errors": 0, "turns": []} for label, *_ in servers}
                for rnd in range(args.rounds):
                    for _, proc, _ in servers:
                        proc.pause(True)
                    if n == 1:
                        for pipe in lone.values():
                            pipe.run(args.seconds / args.rounds, max(1, args.requests // args.rounds))
                    if n in bound:
                        bound[n].run(args.seconds / args.rounds, max(n, args.requests // args.rounds))
                    for label, proc, path in (servers if rnd % 2 == 0 else servers[::-1]):
                        proc.pause(False)
                        r = asyncio.run(load(f"http://127.0.0.1:{proc.port}{path}", payloads, n,
                                             args.seconds / args.rounds, max(n, args.requests // args.rounds),
                                             warmup=10 if rnd == 0 else 2))
                        proc.pause(True)
                        acc[label]["lat"] += r["lat"]
                        acc[label]["took"] += r["took"]
                        acc[label]["errors"] += r["errors"]
                        acc[label]["turns"].append(r["p50"])
                if n == 1:
                    turns = {label: a["turns"] for label, a in acc.items()}
                for label, a in acc.items():
                    lat = np.asarray(a["lat"]) * 1000
                    r = {"n": len(lat), "rps": len(lat) / a["took"], "p50": float(np.percentile(lat, 50)),
                         "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99)),
                         "errors": a["errors"]}
                    rows.append((label, n, r))
                    print(f"{label} x{n}: {r['rps']:.1f} req/s p50 {r['p50']:.1f} p95 {r['p95']:.1f} p99 "
                          f"{r['p99']:.1f} ({r['n']} requests, {r['errors']} errors)", file=sys.stderr, flush=True)
            floor: dict[str, dict] = {}
            if 1 in levels:  # what HTTP alone costs a lone client (the same body, no model), with both clients
                plain = next((proc for label, proc, path in servers if path == "/predict" and "plain" in label),
                             None) or start("plain", project, onnx)
                plain.pause(False)
                if not any(proc is plain for _, proc, _ in servers):
                    servers.append(("floor", plain, "/null"))
                chosen = CLIENT
                for CLIENT in ("httpx", "aiohttp"):
                    floor[CLIENT] = asyncio.run(load(f"http://127.0.0.1:{plain.port}/null", payloads, 1,
                                                     min(args.seconds, 5), 2000))
                CLIENT = chosen
        finally:
            for _, proc, _ in servers:
                proc.stop()
            for pipe in [*lone.values(), *bound.values()]:
                pipe.stop()
        rows = [row for row in rows if row[0] != "floor"]
        rows.sort(key=lambda row: [label for label, *_ in servers].index(row[0]))
        print("| server | clients | req/s | p50 ms | p95 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|")
        for label, n, r in rows:
            print(f"| {label} | {n} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | "
                  f"{r['errors']} |")
        by = {(label, n): r for label, n, r in rows}
        mine = [label for label in dict.fromkeys(lb for lb, *_ in rows) if label.startswith("visionloop")]
        failed = {label for label, _, r in rows if r["errors"]}
        peers = [label for label, *_ in dict.fromkeys((lb,) for lb, *_ in rows)
                 if not label.startswith("visionloop") and label not in failed]
        for label in mine if peers else []:  # batching off is the CPU default (Settings.batch_limit)
            print(f"\n{label}:\n| clients | visionloop req/s | best peer | peer req/s | ratio | visionloop p95 | "
                  "peer p95 |\n|---:|---:|---|---:|---:|---:|---:|")
            for n in levels:
                best = max(peers, key=lambda p, n=n: by[(p, n)]["rps"])
                a, b = by[(label, n)], by[(best, n)]
                print(f"| {n} | {a['rps']:.1f} | {best} | {b['rps']:.1f} | {a['rps'] / b['rps']:.2f} | "
                      f"{a['p95']:.1f} | {b['p95']:.1f} |")
        if lone:  # a lone client: every server against the in-process pipeline at 1 and all threads
            base = {t: pipe.p50() for t, pipe in lone.items()}
            print("\n| one client | p50 ms | " + " | ".join(f"over the {t}-thread pipeline without HTTP ({base[t]:.1f} "
                                                      "ms, in the same turns)" for t in base)
                  + " |\n|---|---:|" + "---:|" * len(base))
            for label in dict.fromkeys(lb for lb, *_ in rows):
                api = by[(label, 1)]["p50"]
                cells = [f"{api - b:+.1f} ms ({(api - b) / b * 100:+.0f} %)" for b in base.values()]
                print(f"| {label} | {api:.1f} | " + " | ".join(cells) + " |")
            # turn by turn: each server's p50 over the pipeline's p50 of the same round (this machine's speed
            # drifts within minutes; a turn and its baseline are seconds apart), median and range over the rounds
            top = max(lone)
            print(f"\n| one client, turn by turn: p50 over the {top}-thread pipeline without HTTP of the same round | "
                  "median | min | max |\n|---|---:|---:|---:|")
            for label, ts in turns.items():
                rel = [(t / b - 1) * 100 for t, b in zip(ts, lone[top].turns, strict=True)]
                print(f"| {label} | {np.median(rel):+.1f} % | {min(rel):+.1f} % | {max(rel):+.1f} % |")
        if floor:
            print("\n| HTTP floor: plain FastAPI, the same JSON body read and base64-decoded, no model, 1 client | "
                  "p50 ms |\n|---|---:|")
            for name, r in floor.items():
                print(f"| {name} client{' (this run)' if name == CLIENT else ''} | {r['p50']:.2f} |")
        if bound:  # what no server can beat here: the same images and closed-loop callers, no HTTP, no client
            print(f"\n| without HTTP: n closed-loop callers on {cores} one-thread sessions, in the same turns | "
                  "req/s | p50 ms | p95 ms | p99 ms |\n|---:|---:|---:|---:|---:|")
            for n, pipe in bound.items():
                r = pipe.summary()
                print(f"| {n} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
