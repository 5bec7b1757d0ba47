"""visionloop demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionloop.cli.console import console, print_json


def demo(
    workdir: Annotated[Path | None, typer.Option(help="Keep the demo's files here (default: a temp folder).")] = None,
    images: Annotated[int, typer.Option(help="How many synthetic images to render.")] = 60,
    train_seconds: Annotated[float, typer.Option(help="Training time budget (checked after each epoch).",
                                                 min=0)] = 60.0,
    database: Annotated[str | None, typer.Option(help="Run the loop on this (empty) PostgreSQL database, e.g. "
                                                  "postgresql+psycopg://user@host/db (default: SQLite).")] = None,
    blobs: Annotated[str | None, typer.Option(help="Keep the demo project's files there, e.g. s3://bucket/demo "
                                               "(default: a folder in the project).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every step as JSON.")] = False,
) -> None:
    """Run the whole loop on a small synthetic dataset that ships with visionloop."""
    from visionloop.demo.run import run

    steps = []
    for step in run(workdir, images=images, train_seconds=train_seconds, db_url=database, blob_url=blobs):
        steps.append({"step": step.name, "summary": step.summary, "seconds": round(step.seconds, 3), **step.data})
        if not as_json:
            console.print(f"[bold green]✓ {step.name:<12}[/] {step.summary} [dim]({step.seconds:.2f} s)[/]",
                          highlight=False)
    if as_json:
        print_json(steps)
