"""visionloop gallery list | add: ready models from weights inside registry packages, and a user's own ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt

app = typer.Typer(help="Ready-to-use models that work offline: ImageNet tags, faces, text; or your own ONNX.",
                  no_args_is_help=True)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """The gallery: each model, the package its weights ship in, and whether it is installed here."""
    from visionloop.gallery import entries

    rows = [e.to_json() for e in entries()]
    if as_json:
        print_json(rows)
        return
    t = Table("name", "task", "input", "weights from", "licence", "installed")
    for r in rows:
        t.add_row(r["name"], r["task"], str(r["input"]), r["package"] + (f" {r['version']}" if r["version"] else ""),
                  r["licence"], "yes" if r["installed"] else "no")
    console.print(t)
    for r in rows:
        console.print(f"{r['name']}: {r['description']}" + ("" if r["installed"] else f" — install: {r['install']}"),
                      highlight=False, soft_wrap=True)


@app.command("add")
def add(
    name: Annotated[str | None, typer.Argument(help="A gallery model (see `visionloop gallery list`).")] = None,
    onnx: Annotated[Path | None, typer.Option("--onnx", help="Register your own ONNX file instead.")] = None,
    task: Annotated[str, typer.Option(help="With --onnx: detect | classify.")] = "detect",
    classes: Annotated[Path | None, typer.Option(help="With --onnx: a text file, one class name per line.")] = None,
    input: Annotated[int | None, typer.Option("--input", help="Square input side in pixels (gallery: its default; "
                                                              "--onnx: required).")] = None,
    preprocess: Annotated[str, typer.Option(help="With --onnx: letterbox | stretch.")] = "letterbox",
    as_name: Annotated[str | None, typer.Option("--name", help="Registry name (default: the gallery name or the "
                                                                "file's stem).")] = None,
    stage: Annotated[str, typer.Option(help="preview | beta | ga")] = "ga",
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Register a ready model in the project's registry (checked by a test inference, timed on this machine);
    then `visionloop predict`, `serve`, `evaluate` and the loop use it like a trained model."""
    from visionloop import gallery
    from visionloop.core.errors import VisionLoopError
    from visionloop.store import Store

    if (name is None) == (onnx is None):
        raise VisionLoopError("name a gallery model or pass --onnx FILE (one of the two)",
                              hint="visionloop gallery list shows the gallery")
    with Store.open(project) as store:
        if onnx is not None:
            if input is None:
                raise VisionLoopError("--input is required with --onnx", hint="the square side the model takes, e.g. 640")
            if classes is None or not classes.is_file():
                raise VisionLoopError("--classes FILE is required with --onnx", path=classes,
                                      hint="a text file with one class name per line, in the model's order")
            names = [ln.strip() for ln in classes.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
            info = gallery.add_onnx(store, onnx, task=task, classes=names, input=input, preprocess=preprocess,
                                    name=as_name, stage=stage)
        else:
            assert name is not None
            info = gallery.add(store, name, name=as_name, input=input, stage=stage)
    card = info.hyper.get("card", {})
    if as_json:
        print_json({"model": info.name, "id": info.id, "task": info.task, "stage": info.stage, "card": card})
        return
    lat = card.get("latency", {})
    src = card.get("source", {})
    origin = f"{src['package']} {src['version']}" if "package" in src else src.get("file", "")
    console.print(f"added [bold]{info.name}[/] ({info.task}, {len(info.classes)} classes, input "
                  f"{card.get('input')}, stage {info.stage}) from {origin}, licence {card.get('licence')}; "
                  f"p50 {lat.get('p50_ms')} ms here", highlight=False, soft_wrap=True)
