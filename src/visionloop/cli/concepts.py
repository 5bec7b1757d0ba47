"""visionloop concepts train | predict | list | delete: teach a yes/no concept from a few images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt

app = typer.Typer(help="Concepts taught in seconds from a few images (frozen embeddings, no knobs).",
                  no_args_is_help=True)


@app.command("train")
def train(
    name: Annotated[str, typer.Option("--name", help="The concept's name (teaching it again replaces it).")],
    positive: Annotated[list[Path], typer.Option("--positive", help="Images (files or folders) of the concept.")],
    negative: Annotated[list[Path] | None, typer.Option(
        "--negative", help="Images that are not the concept (without any: a prototype and its spread).")] = None,
    embedder: Annotated[Path | None, typer.Option(
        help="Your own ONNX embedder (NCHW float32 RGB 0..255 in, a vector out); default: ImageNet "
             "EfficientNet-Lite0.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Teach a concept: logistic regression on positives vs negatives, or a prototype from positives alone."""
    from visionloop.store import Store
    from visionloop.train.concepts import train_concept

    with Store.open(project) as store:
        result = train_concept(store, name, list(positive), list(negative or []), embedder=embedder)
    if as_json:
        print_json(result.to_json())
        return
    c = result.concept
    how = (f"logistic regression on {c.positives} positives vs {c.negatives} negatives" if c.kind == "logistic"
           else f"prototype of {c.positives} positives, similarity threshold {c.threshold:.3f}")
    console.print(f"Concept [bold]{c.name}[/] {'replaced' if c.replaced else 'taught'}: {how} "
                  f"({c.embedder}, {result.seconds:.2f} s"
                  f"{', embedder exported to ONNX once' if result.exported_embedder else ''})", highlight=False)


@app.command("predict")
def predict(
    name: Annotated[str, typer.Argument(help="Concept name, several as a,b,c (each answers alone), or all.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Does each image show the concept(s)? Scores and yes/no per concept (ONNX Runtime, no torch)."""
    from visionloop.core.errors import VisionLoopError
    from visionloop.infer.concepts import ConceptHead, predict_files
    from visionloop.store import Store
    from visionloop.store import concepts as registry
    from visionloop.store.models import blob_file

    with Store.open(project) as store:
        if name == "all":
            infos = registry.list_all(store)
            if not infos:
                raise VisionLoopError("the project has no concepts",
                                      hint="teach one with `visionloop concepts train --name NAME --positive IMAGES`")
        else:
            infos = [registry.get(store, n.strip()) for n in name.split(",") if n.strip()]
        embedders = {i.embedder_sha256 for i in infos}
        if len(embedders) > 1:
            raise VisionLoopError(f"concepts {', '.join(i.name for i in infos)} use different embedders",
                                  hint="predict them one at a time")
        embedder = blob_file(store, infos[0].embedder_sha256)
    preds = predict_files(embedder, {i.name: ConceptHead.from_json(i.head) for i in infos}, list(paths))
    if as_json:
        print_json([p.to_json() for p in preds])
        return
    for p in preds:
        answers = "  ".join(f"{a.concept} {'yes' if a.match else 'no'} ({a.score:.3f})" for a in p.answers)
        console.print(f"{p.file_name}: {answers}", highlight=False)


@app.command("list")
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every concept with its model, images and embedder."""
    from visionloop.store import Store
    from visionloop.store import concepts as registry

    with Store.open(project) as store:
        infos = registry.list_all(store)
    if as_json:
        print_json([i.to_json() for i in infos])
        return
    table = Table("name", "model", "positives", "negatives", "threshold", "embedder", "created")
    for i in infos:
        table.add_row(i.name, i.kind, str(i.positives), str(i.negatives), f"{i.threshold:.3f}", i.embedder,
                      i.created_at[:19])
    console.print(table)


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="Concept name.")], project: ProjectOpt = Path("."),
           as_json: JsonOpt = False) -> None:
    """Remove a concept (its images' blobs stay until `visionloop gc`)."""
    from visionloop.store import Store
    from visionloop.store import concepts as registry

    with Store.open(project) as store:
        info = registry.delete_concept(store, name)
    if as_json:
        print_json({"deleted": info.name, "id": info.id})
        return
    console.print(f"Deleted concept {info.name}", highlight=False)
