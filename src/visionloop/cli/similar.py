"""`visionloop embed | similar | search`: embeddings of every project image and nearest-neighbour search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import render_json_or

EmbedderOpt = Annotated[Path | None, typer.Option(
    help="Your own ONNX embedder (e.g. a trained model's backbone; NCHW float32 RGB 0..255 in, a vector out); "
         "default: ImageNet EfficientNet-Lite0.")]
KOpt = Annotated[int, typer.Option("-k", help="How many images to return.")]


def resolve_embedder(store: Any, embedder: Path | None) -> tuple[str, str]:
    """(name, ONNX blob) of the embedder to use: the user's file, or the default (exported once per project)."""
    from visionloop.train.concepts import default_embedder, user_embedder

    if embedder is not None:
        return user_embedder(store, embedder)
    name, sha, _ = default_embedder(store)
    return name, sha


def _render(result: Any, as_json: bool) -> None:
    data = render_json_or(result, as_json)
    if data is None:
        return
    table = Table("#", "image", "file", "score")
    for i, h in enumerate(result.hits, 1):
        table.add_row(str(i), str(h.image_id), h.file_name, f"{h.score:.4f}")
    console.print(table)
    if result.embedded:
        err_console.print(f"embedded {result.embedded} new images with {result.embedder} first", highlight=False)


def embed(workers: Annotated[int | None, typer.Option(help="Worker processes (default: the cores, at most 4).")]
          = None, embedder: EmbedderOpt = None, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Embed every project image not embedded yet (incremental; stored per image and embedder)."""
    from visionloop.loop.similar import embed_project
    from visionloop.store import Store

    with Store.open(project) as store:
        result = embed_project(store, resolve_embedder(store, embedder), workers=workers)
    data = render_json_or(result, as_json)
    if data is None:
        return
    console.print(f"embedded {result.embedded} images ({result.kept} already embedded) of {result.images} with "
                  f"{result.embedder} in {result.seconds:.1f} s", highlight=False)


def similar(
    image: Annotated[str, typer.Argument(help="A project image (id or file name) or an image file.")],
    k: KOpt = 20,
    embedder: EmbedderOpt = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The project images most similar to IMAGE (cosine on embeddings; new images are embedded first)."""
    from visionloop.loop.similar import similar as find_similar
    from visionloop.store import Store

    with Store.open(project) as store:
        result = find_similar(store, resolve_embedder(store, embedder), image, k=k)
    _render(result, as_json)


def search(
    concept: Annotated[str, typer.Option("--concept", help="A concept's name (`visionloop concepts list`).")],
    k: KOpt = 20,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Project images ranked by a concept's score (with the concept's own embedder)."""
    from visionloop.loop.similar import search_concept
    from visionloop.store import Store

    with Store.open(project) as store:
        result = search_concept(store, concept, k=k)
    _render(result, as_json)
