"""visionloop serve: the HTTP prediction API over the project's models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from visionloop.cli.console import err_console
from visionloop.cli.options import ProjectOpt


def serve(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback requires API keys.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (each loads its own models).")] = 1,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Serve only this model or task family (repeatable; default: all).")] = None,
    auth: Annotated[bool, typer.Option("--auth", help="Require API keys on loopback too.")] = False,
    max_batch: Annotated[int | None, typer.Option(
        help="Largest inference batch per model (1: batching off; default: 1 on CPU with one ONNX Runtime thread "
             "per inference thread, else 4).")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help="Longest wait for a batch to fill, in ms.")] = None,
    queue_size: Annotated[int | None, typer.Option(help="Images waiting per model before 503.")] = None,
    max_images: Annotated[int | None, typer.Option(help="Images per request.")] = None,
    max_body_mb: Annotated[float | None, typer.Option(help="Largest request body, in MB.")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="Largest image, in pixels (decompression-bomb guard).")] = None,
    allow_url: Annotated[list[str] | None, typer.Option(
        "--allow-url", help="A host whose image URLs JSON requests may name (repeatable; default: none).")] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute for keys without their own.")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N (GPU N)")] = "cpu",
    model_workers: Annotated[int | None, typer.Option(
        help="Concurrent inference threads per model (default: one per core, at most 4).")] = None,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime threads per inference thread.")] = None,
    solo: Annotated[bool, typer.Option(
        "--solo/--no-solo", help="On CPU: run an image that arrives while nothing else is inferred on every core "
                                 "(a second session per model; a lone client's answer comes sooner).")] = True,
    spin_us: Annotated[int | None, typer.Option(
        help="How long (µs) ONNX Runtime's threads spin for work before sleeping (default 200; 0: never).")] = None,
    log_predictions: Annotated[float | None, typer.Option(
        metavar="RATE", help="Log this share (0..1) of served images with their predictions into the project "
                             "(every model; default: off). See `visionloop predictions`.")] = None,
    log_below: Annotated[float | None, typer.Option(
        help="With --log-predictions: only images whose top confidence is under this.")] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Run as a Ray Serve application: one deployment per model (needs visionloop[ray]).")] = False,
    replicas: Annotated[int, typer.Option(help="With --ray: replicas per model deployment.")] = 1,
    ray_batching: Annotated[str, typer.Option(
        help="With --ray: ray (Ray Serve's @serve.batch, measured faster) | engine (our micro-batcher per replica).")] = "ray",
    ray_address: Annotated[str | None, typer.Option(
        help="With --ray: join this Ray cluster (default: start a local Ray instance).")] = None,
    log_rules: Annotated[str | None, typer.Option(
        help="Logging rules per model as JSON or a .json/.toml file: {\"MODEL or *\": {\"rate\", \"below\", "
             "\"class_caps\": {CLASS: N}, \"cap_window\": minute|hour|day, \"per_minute\", \"per_hour\", "
             "\"per_day\"}}.")] = None,
    log_embedder: Annotated[str, typer.Option(
        help="Embed logged images (off the request path): auto (the project's stored embedder, if any) | off | an "
             "ONNX embedder file.")] = "auto",
) -> None:
    """Serve the project's models over HTTP (OpenAPI at /docs) until Ctrl-C."""
    from visionloop.serve import Settings
    from visionloop.serve import serve as run

    given = {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "queue_size": queue_size,
             "max_images": max_images, "max_pixels": max_pixels, "rate_limit": rate_limit, "threads": threads,
             "spin_us": spin_us,
             "max_body_bytes": int(max_body_mb * 1024 * 1024) if max_body_mb else None}
    settings = Settings(host=host, port=port, auth=True if auth else None, url_allow_list=allow_url or [],
                        models=model or [], workers=model_workers,
                        log_predictions=log_settings(log_predictions, log_below, log_rules),
                        log_embedder=log_embedder, device=device, solo=solo, **{k: v for k, v in given.items() if v is not None})
    shown = host if ":" not in host else f"[{host}]"
    err_console.print(f"serving {Path(project).resolve()} on http://{shown}:{port} (docs at /docs, "
                      f"auth {'on' if settings.auth_required() else 'off'}); Ctrl-C stops", highlight=False,
                      soft_wrap=True)
    if settings.log_predictions:
        err_console.print(f"logging predictions for {', '.join(sorted(settings.log_predictions))} "
                          "(`visionloop predictions list` shows them)", highlight=False)
    if ray:
        from visionloop.serve.ray_app import serve_ray

        err_console.print(f"on Ray Serve: {replicas} replica(s) per model, batching by {ray_batching}",
                          highlight=False)
        serve_ray(project, settings, replicas=replicas, batching=ray_batching, address=ray_address)
        return
    run(project, settings, workers=workers)


def log_settings(rate: float | None, below: float | None, rules: str | None) -> dict[str, Any]:
    """`--log-rules` (inline JSON, or a .json / .toml file) with `--log-predictions` / `--log-below` as the
    rules of "*" (every model the file does not name)."""
    import json

    from visionloop.core.errors import VisionLoopError

    out: dict[str, Any] = {}
    if rules is not None:
        text, source = rules, "--log-rules"
        if not rules.lstrip().startswith("{"):
            path = Path(rules)
            if not path.is_file():
                raise VisionLoopError(f"--log-rules: neither JSON nor a file: {rules!r}")
            text, source = path.read_text(encoding="utf-8"), str(path)
        try:
            if source.endswith(".toml"):
                import tomllib

                out = tomllib.loads(text)
            else:
                out = json.loads(text)
        except ValueError as e:
            raise VisionLoopError(f"{source}: not valid {'TOML' if source.endswith('.toml') else 'JSON'}: {e}") \
                from None
        if not isinstance(out, dict) or not all(isinstance(v, dict) for v in out.values()):
            raise VisionLoopError(f"{source}: expected an object of model name -> rules")
    if rate is not None or below is not None:
        out["*"] = {**out.get("*", {}), **({"rate": rate} if rate is not None else {}),
                    **({"below": below} if below is not None else {})}
    from pydantic import ValidationError

    from visionloop.serve.settings import LogRules

    checked = {}
    for name, r in out.items():
        try:
            checked[name] = LogRules.model_validate(r)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise VisionLoopError(f"logging rules of {name!r}: {where}: {first['msg']}",
                                  hint="rate and below lie in 0..1; caps and limits are counts") from None
    return checked


def ui(
    project: ProjectOpt = Path("."),
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = False,
) -> None:
    """Browse the project in a web page (dataset, health, models and their errors), on loopback, until Ctrl-C."""
    import socket

    from visionloop.serve import Settings
    from visionloop.serve import serve as run

    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    print(url, flush=True)
    err_console.print(f"the web UI of {Path(project).resolve()} is at {url} (API docs at /docs); Ctrl-C stops",
                      highlight=False, soft_wrap=True)
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    run(project, Settings(host="127.0.0.1", port=port), workers=1)
