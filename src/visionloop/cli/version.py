"""visionloop version create | list | show | diff | preview | export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.formats.base import ImageMode

app = typer.Typer(help="Dataset versions: split, preprocess and augment into immutable, reproducible versions.",
                  no_args_is_help=True)

VersionArg = Annotated[str, typer.Argument(help="Version name (v1), id, or `latest`.")]


@app.command("create")
def create(
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Recipe file (YAML or JSON).")],
    name: Annotated[str | None, typer.Option(help="Version name (default: v<n>).")] = None,
    parent: Annotated[str | None, typer.Option(help="The version this one derives from (lineage).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (0: in this process).")] = 2,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Generate a version from a recipe; re-running an interrupted one resumes it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from visionloop.store import Store
    from visionloop.versions import create_version

    with Store.open(project) as store, Progress(
        TextColumn("[bold]Generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("generate", total=None)
        done, selected = [0], [0]

        def advance(n: int) -> None:
            done[0] += n
            bar.advance(task, n)

        def set_total(n: int) -> None:
            selected[0] = n
            bar.update(task, total=n)

        try:
            info = create_version(store, recipe, name=name, parent=parent, workers=workers, progress=advance,
                                  total=set_total)
        except KeyboardInterrupt:
            from visionloop.cli import console as console_mod

            console_mod.interrupt_note = (
                f"version generation was stopped ({done[0]} of {selected[0]} images committed by this run, kept); "
                "run the same command again to resume")
            raise
    if as_json:
        print_json(info.to_json())
        return
    if info.reused:
        console.print(f"Version [bold]{info.name}[/] already holds this recipe applied to these images "
                      "(nothing to generate)")
        return
    c = info.counts
    console.print(f"Created version [bold]{info.name}[/]: {c.get('images', 0)} images "
                  f"({_splits(c)}), {c.get('annotations', 0)} annotations", soft_wrap=True)
    gen = c.get("generation", {})
    if gen.get("annotations_dropped"):
        err_console.print(f"{gen['annotations_dropped']} objects dropped (cut below the visibility threshold)")


def _splits(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v['images']}" for k, v in sorted(counts.get("by_split", {}).items())) or "empty"


@app.command("list")
def list_(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Every version with its status and counts."""
    from visionloop.store import Store
    from visionloop.versions import list_versions

    with Store.open(project) as store:
        infos = list_versions(store)
    if as_json:
        print_json([i.to_json() for i in infos])
        return
    table = Table("name", "status", "images", "annotations", "splits", "parent", "created")
    for i in infos:
        status = i.status if i.status == "ready" else f"{i.status} ({i.done}/{i.total})"
        table.add_row(i.name, status, str(i.counts.get("images", "")), str(i.counts.get("annotations", "")),
                      _splits(i.counts), i.parent or "", i.created_at[:19])
    console.print(table)


@app.command("show")
def show(version: VersionArg, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """One version: recipe, lineage, counts."""
    import yaml

    from visionloop.store import Store
    from visionloop.versions import show_version

    with Store.open(project) as store:
        info = show_version(store, version)
    data = info.to_json()
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{info.name}[/] ({info.status}), {info.counts.get('images', 0)} images, "
                  f"{info.counts.get('annotations', 0)} annotations, seed {info.seed}")
    console.print(f"splits: {_splits(info.counts)}")
    console.print("classes: " + ", ".join(f"{k} {v}" for k, v in info.counts.get("by_class", {}).items()))
    console.print(f"source batches: {', '.join(map(str, info.source_batches))}; parent: {info.parent or '-'}; "
                  f"content {str(info.content_digest)[:12]}")
    console.print(yaml.safe_dump(info.recipe, sort_keys=False).rstrip(), highlight=False)


@app.command("diff")
def diff(a: VersionArg, b: VersionArg, project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """What changed from version A to version B: images, annotations, splits, recipe."""
    from visionloop.store import Store
    from visionloop.versions import diff_versions

    with Store.open(project) as store:
        d = diff_versions(store, a, b)
    data = d.to_json()
    if as_json:
        print_json(data)
        return
    im, an = data["images"], data["annotations"]
    if d.same_content:
        console.print(f"{d.a} and {d.b} hold identical content")
    console.print(f"images: {im['added']} added, {im['removed']} removed, {im['changed']} changed "
                  f"({im['pixels_changed']} pixels, {im['annotations_changed']} annotations, "
                  f"{im['split_changed']} split), {im['unchanged']} unchanged")
    console.print(f"annotations: {an['a']} → {an['b']} ({an['added']} added, {an['removed']} removed)")
    for cls, delta in data["by_class"].items():
        console.print(f"  {cls}: {delta:+d}")
    for change in data["recipe"]:
        console.print(f"recipe {change['field']}: {change['a']!r} → {change['b']!r}", highlight=False)


@app.command("preview")
def preview(
    version: VersionArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("preview.png"),
    n: Annotated[int, typer.Option("-n", help="How many images.")] = 16,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """A PNG grid of augmented samples with their annotations drawn."""
    from visionloop.store import Store
    from visionloop.versions import preview_version

    with Store.open(project) as store:
        p = preview_version(store, version, out, n=n)
    if as_json:
        print_json(p.to_json())
    else:
        console.print(f"Wrote {p.path} ({p.width}×{p.height}, {len(p.images)} images)")


@app.command("export")
def export(
    version: VersionArg,
    out: Annotated[Path, typer.Argument(help="Output folder (or .zip with --zip).")],
    format: Annotated[str, typer.Option("--format", "-f", help="Target format.")],
    zip: Annotated[bool, typer.Option("--zip", help="Write one .zip file.")] = False,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    images: Annotated[ImageMode, typer.Option(help="copy, link or none.")] = ImageMode.COPY,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Export a version in any format, streaming."""
    from visionloop.cli.render import render_write_report
    from visionloop.store import Store
    from visionloop.versions import export_version

    with Store.open(project) as store:
        report = export_version(store, version, out, format=format, zip=zip, split=split, images=images,
                                overwrite=overwrite)
    render_write_report(report, as_json)
