"""The plain server vs `serve --ray` (engine batching, Ray Serve @serve.batch) on the same tiny detector.

    flock /tmp/cpu.lock .venv/bin/python bench/serve_ray.py [--imgsz 160] [--requests 200] [--replicas 1]

Loopback only, bounded (at most --requests per point and --seconds). Prints requests/s and p50/p95/p99 at 1 and
8 concurrent clients for: visionloop (uvicorn in a thread, this process), and the Ray Serve application
(ingress + one deployment per model) with each batching in turn, on a local Ray instance.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import bodies, build_model, free_port, load, photos  # noqa: E402  (bench/serve.py)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--wait-ms", type=float, default=2)
    args = ap.parse_args()

    import ray
    from ray import serve as rs

    from visionloop.serve import Settings
    from visionloop.serve.background import BackgroundServer
    from visionloop.serve.ray_app import deploy

    clients = [int(c) for c in args.clients.split(",")]
    settings = Settings(refresh_s=0, max_batch=args.max_batch, max_wait_ms=args.wait_ms)
    payloads = bodies(photos(16))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project, _ = build_model(Path(tmp), args.imgsz)

        def measure(name: str, url: str) -> None:
            for c in clients:
                r = asyncio.run(load(f"{url}/v1/models/bench/predict", payloads, c, args.seconds, args.requests))
                rows.append((name, c, r))
                print(f"  {name} {c} clients: {r['rps']:.1f} req/s p50 {r['p50']:.1f} ms", file=sys.stderr)

        with BackgroundServer(project, settings) as s:
            measure("visionloop (plain)", s.url)
        port = free_port()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            rs.start(http_options={"host": "127.0.0.1", "port": port})
            for batching in ("engine", "ray"):
                deploy(project, settings, replicas=args.replicas, batching=batching)
                measure(f"Ray Serve, {args.replicas} replica(s), {batching} batching", f"http://127.0.0.1:{port}")
        finally:
            rs.shutdown()
            ray.shutdown()
    print(f"\n{args.imgsz} px detector, max batch {args.max_batch}, wait {args.wait_ms} ms, "
          f"≤{args.requests} requests / {args.seconds:.0f} s per point, loopback\n")
    print("| server | clients | req/s | p50 ms | p95 ms | p99 ms | errors | n |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, c, r in rows:
        print(f"| {name} | {c} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | "
              f"{r['errors']} | {r['n']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
