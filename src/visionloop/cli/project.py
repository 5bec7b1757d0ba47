"""visionloop init | import | export | stats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json, progress
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import plural as _n
from visionloop.cli.render import render_assumed, render_write_report
from visionloop.formats.base import ImageMode

EXIT_QUARANTINED = 3  # the rest landed, some entries were quarantined (ingest.importer.EXIT_QUARANTINED)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new project.")] = Path("."),
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the folder).")] = None,
    blobs: Annotated[str | None, typer.Option(help="Blob store URL or folder (default: ./blobs).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project: a SQLite database and a content-addressed blob folder by default; for a team, a
    PostgreSQL database (--database postgresql+psycopg://…) and an S3 bucket (--blobs s3://bucket/prefix)."""
    from visionloop.store import Store

    store = Store.init(directory, db_url=database, blob_url=blobs)
    # a team member's folder on a shared database joins the project already there
    images = store.stats().images if store.engine.dialect.name != "sqlite" else 0
    result = {"project": str(store.root), "database": store.engine.url.render_as_string(hide_password=True),
              "blobs": store.blobs.url, "images": images}
    store.close()
    if as_json:
        print_json(result)
    elif store.engine.dialect.name == "sqlite" and "://" not in store.blobs.url:
        console.print(f"Created project in [bold]{result['project']}[/]")
    else:
        joined = f"; joined the project already in that database: {images} images" if images else ""
        console.print(f"Created project in [bold]{result['project']}[/] (database {result['database']}, "
                      f"blobs {result['blobs']}{joined})", highlight=False, soft_wrap=True)


def import_(
    path: Annotated[Path, typer.Argument(help="Dataset folder or annotation file.")],
    format: Annotated[str | None, typer.Option("--format", "-f", help="Source format (default: detect).")] = None,
    split: Annotated[str | None, typer.Option(help="Put every image in this split.")] = None,
    no_fix: Annotated[bool, typer.Option("--no-fix", help="Keep out-of-bounds/zero-area annotations and wrong declared sizes as they are, for `visionloop health`.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse the whole import on the first problem (nothing is written) instead of quarantining what cannot be used.")] = False,
    allow_outside_root: Annotated[bool, typer.Option(
        "--allow-outside-root", help="Read images the annotations place outside the dataset folder.")] = False,
    source: Annotated[str | None, typer.Option(
        "--source", help="Mark every annotation as made by: model (pre-labels; COCO `score` kept as confidence), "
                         "human or imported (default: as the format says).")] = None,
    csv_columns: Annotated[str | None, typer.Option(
        "--csv-columns", help="How a box CSV's columns map, e.g. image=ImageID,class=LabelName,coords=normalised "
        "(see `convert --help`).")] = None,
    blur: Annotated[bool, typer.Option("--blur", help="Find faces (the gallery's face-detector) on the images "
                                                     "this import adds and blur them, as a blur batch right after "
                                                     "the import (`visionloop blur settings --on-import` makes it "
                                                     "the default).")] = False,
    blur_plates: Annotated[str | None, typer.Option("--blur-plates", help="With --blur: also this registry "
                                                                          "plate detector.")] = None,
    blur_vehicles: Annotated[str | None, typer.Option("--blur-vehicles", help="With --blur: also the plate "
                                                                              "bands of this registry vehicle "
                                                                              "detector's vehicles.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Import a dataset as one batch: everything usable lands; what is not is quarantined (listed by
    `visionloop batch show` and `health`). With --strict, all of it or, on any problem, nothing.

    Exit codes: 0 all landed; 3 the rest landed, some entries quarantined; 1 an error, nothing written.
    """
    from visionloop.formats.base import parse_csv_columns
    from visionloop.geo.privacy import blur_batch, import_detectors
    from visionloop.ingest import import_dataset
    from visionloop.store import Store

    columns = parse_csv_columns(csv_columns) if csv_columns else None
    blurred = None
    with Store.open(project) as store:
        # the detectors are loaded first: an import that is to be blurred and cannot be is not made
        detectors = import_detectors(store, blur=blur, plates=blur_plates, vehicles=blur_vehicles)
        with progress(f"Importing {path.name}") as advance:
            report = import_dataset(store, path, format=format, split=split, fix=not no_fix, strict=strict,
                                    progress=advance, allow_outside_root=allow_outside_root,
                                    annotation_source=_source(source), csv_columns=columns)
        if detectors is not None and report.batch_id is not None:
            blurred = blur_batch(store, report.batch_id, detectors)
    _render_import(report, as_json, blurred)
    if report.quarantined:
        raise typer.Exit(EXIT_QUARANTINED)


def _source(text: str | None) -> Any:
    from visionloop.core.errors import VisionLoopError
    from visionloop.core.sample import Source

    if text is None:
        return None
    try:
        return Source(text.lower())
    except ValueError:
        raise VisionLoopError(f"unknown --source {text!r}", hint="use model, human or imported") from None


def _render_import(report: Any, as_json: bool, blurred: Any = None) -> None:
    if as_json:
        print_json({**report.to_json(), **({"blur": blurred.to_json()} if blurred is not None else {})})
        return
    c = report.counts
    q = len(report.quarantined)
    for what, n in sorted(report.skipped.items()):  # seen by the reader and not read: said even when nothing changed
        err_console.print(f"[yellow]skipped[/] {n} × {what} (seen in the source, not read)", soft_wrap=True)
    render_assumed(report.assumed)
    if report.batch_id is None:
        kept = c.get("images_kept_labelled", 0)
        blurred_in = c.get("originals_blurred_in_project", 0)
        console.print(f"Nothing new in {report.source}: {c.get('images_unchanged', 0)} images already in the project"
                      + (f" ({blurred_in} as their blurred copies: the project discarded the unblurred originals "
                         "and does not store them again)" if blurred_in else "")
                      + (f"; {kept} already labelled, kept as they were (pre-labels and images without labels "
                         "never replace labels)"
                         if kept else ""))
        return
    parts = [f"{c.get('images_added', 0)} images added"]
    if c.get("images_updated"):  # already in the project: their annotations were replaced by the file's
        parts.append(f"{c['images_updated']} images' annotations replaced "
                     f"({c.get('annotations_removed', 0)} annotations removed)")
    if c.get("images_unchanged"):
        parts.append(f"{c['images_unchanged']} unchanged")
    if c.get("images_already_present"):  # unlabelled images whose bytes the project holds under another name
        parts.append(f"{c['images_already_present']} already in the project under another name")
    if c.get("images_kept_labelled"):  # pre-labels (--source model) or no labels for images that have labels
        parts.append(f"{c['images_kept_labelled']} already labelled, their labels kept")
    console.print(f"Imported {report.source} ({report.format}) as batch {report.batch_id}: " + ", ".join(parts)
                  + f"; {c.get('annotations_added', 0)} annotations; {c.get('blobs_added', 0)} new image files"
                  + (f"; {q} quarantined" if q else ""), soft_wrap=True)
    if report.fixes:
        err_console.print(("Fixed: " if report.fixed else "Found (kept as they are for `visionloop health`): ")
                          + ", ".join(f"{k} {v}" for k, v in sorted(report.fixes.items())))
    if report.notes:
        err_console.print("Noted for `visionloop health`: "
                          + ", ".join(f"{k} {v}" for k, v in sorted(report.notes.items())))
    _render_quarantine(report)
    if blurred is not None:
        from visionloop.cli.blur import describe

        console.print("Blurred: " + describe(blurred), highlight=False, soft_wrap=True)


def _render_quarantine(report: Any) -> None:
    q = report.quarantined
    if not q:
        return
    err_console.print(f"[yellow]Quarantined {len(q)}[/] (not imported; `visionloop batch show {report.batch_id}` "
                      "lists them):", soft_wrap=True)
    for r in q[:10]:
        err_console.print(f"  {r['file']}" + (f" ({r['element']})" if r["element"] else "") + f": {r['reason']}",
                          soft_wrap=True, markup=False)
    if len(q) > 10:
        err_console.print(f"  … and {len(q) - 10} more")


def export(
    out: Annotated[Path, typer.Argument(help="Output folder (must be new or empty).")],
    format: Annotated[str, typer.Option("--format", "-f", help="Target format.")],
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    images: Annotated[ImageMode, typer.Option(help="copy, link or none.")] = ImageMode.COPY,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Export the project's images and annotations in any format."""
    from visionloop.ingest import export_dataset
    from visionloop.store import Store

    with Store.open(project) as store:
        report = export_dataset(store, out, format=format, split=split, images=images, overwrite=overwrite)
    render_write_report(report, as_json)


def stats(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Counts: images, annotations, classes, splits, label states."""
    from visionloop.store import Store

    with Store.open(project) as store:
        s = store.stats()
    if as_json:
        print_json(s.to_json())
        return
    console.print(f"{s.images} images ({s.blobs} distinct files), {s.annotations} annotations, "
                  f"{_n(s.classes, 'class', 'classes')}, {_n(s.batches, 'batch', 'batches')}")
    table = Table("split", "images", "annotations")
    for split, v in sorted(s.by_split.items()):
        table.add_row(split, str(v["images"]), str(v["annotations"]))
    console.print(table)
    console.print("label state: " + ", ".join(f"{k} {v}" for k, v in sorted(s.by_state.items())))
    console.print("kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(s.by_kind.items())))
    classes = Table("class", "annotations")
    for name, n in s.by_class.items():
        classes.add_row(name, str(n))
    console.print(classes)


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    min_age: Annotated[float, typer.Option(help="Leave files younger than this many seconds alone.", min=0)] = 600,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Remove image and model files (blobs) that nothing in the project refers to any more."""
    from visionloop.store import Store
    from visionloop.store.gc import collect

    with Store.open(project) as store:
        report = collect(store, dry_run=dry_run, min_age=min_age)
    if as_json:
        print_json(report.to_json())
        return
    verb = "Would remove" if dry_run else "Removed"
    console.print(f"{verb} {_n(report.files_removed, 'unreferenced file', 'unreferenced files')} "
                  f"({report.bytes_removed:,} bytes), {report.temporary_removed} temporary files, "
                  f"{report.rows_removed} blob rows" + (f"; kept {report.kept_recent} recent files" if
                                                        report.kept_recent else ""))
