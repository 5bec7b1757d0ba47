"""`visionloop batch list|show|undo` and `visionloop undo N`: what each import or fix did, and taking it back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import render_json_or

app = typer.Typer(help="The project's batches (imports, fixes): list, show, undo.", no_args_is_help=True)

BatchArg = Annotated[int, typer.Argument(help="Batch id (`visionloop batch list`).")]


@app.command("list")
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every batch, oldest first."""
    from visionloop.cli.console import print_json
    from visionloop.ingest import list_batches
    from visionloop.store import Store

    with Store.open(project) as store:
        rows = list_batches(store)
    if as_json:
        print_json([b.to_json() for b in rows])
        return
    table = Table("batch", "kind", "source", "format", "when", "images +/~", "annotations +/-", "state")
    for b in rows:
        s = b.summary
        table.add_row(str(b.id), b.kind, b.source, b.format or "",
                      b.created_at.strftime("%Y-%m-%d %H:%M") if b.created_at else "",
                      f"{s.get('images_added', 0)}/{s.get('images_updated', 0)}",
                      f"{s.get('annotations_added', 0)}/{s.get('annotations_removed', 0)}",
                      "undone" if b.undone else "")
    console.print(table)


@app.command("show")
def show(batch: BatchArg, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """One batch: where from, when, and its counts."""
    from visionloop.ingest import show_batch
    from visionloop.store import Store

    with Store.open(project) as store:
        info = show_batch(store, batch)
    data = render_json_or(info, as_json)
    if data is None:
        return
    console.print(f"batch {info.id}: {info.kind} of {info.source}" + (f" ({info.format})" if info.format else "")
                  + (" — undone" if info.undone else ""), soft_wrap=True)
    for k, v in sorted(info.summary.items()):
        if k != "quarantined":
            console.print(f"  {k}: {v}", soft_wrap=True)
    quarantined = info.summary.get("quarantined") or []
    if quarantined:
        console.print(f"  quarantined {len(quarantined)}:")
    for r in quarantined:
        console.print(f"    {r['file']}" + (f" ({r['element']})" if r.get("element") else "") + f": {r['reason']}",
                      soft_wrap=True, markup=False, highlight=False)


@app.command("undo")
def undo(batch: BatchArg, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Undo an import or a fix exactly (refused while a later batch changed the same rows: undo that first)."""
    from visionloop.ingest import undo_batch
    from visionloop.store import Store

    with Store.open(project) as store:
        report = undo_batch(store, batch)
    if render_json_or(report, as_json) is None:
        return
    parts = [f"{n} {k} removed" for k, n in report.removed.items() if n]
    parts += [f"{n} {k.replace('_', ' ')}" for k, n in sorted(report.restored.items())]
    console.print(f"Undid {report.batch.kind} batch {report.batch.id}: " + (", ".join(parts) or "nothing to undo"),
                  soft_wrap=True)
