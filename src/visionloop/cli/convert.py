"""visionloop convert | formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt
from visionloop.cli.render import render_write_report
from visionloop.formats.base import ImageMode


def convert(
    src: Annotated[Path, typer.Argument(help="Dataset folder or annotation file.")],
    out: Annotated[Path, typer.Argument(help="Output folder (must be new or empty).")],
    to: Annotated[str, typer.Option("--to", "-t", help="Target format.")],
    from_: Annotated[str | None, typer.Option("--from", help="Source format (default: detect).")] = None,
    split: Annotated[str | None, typer.Option(help="Put every image in this split.")] = None,
    images: Annotated[ImageMode, typer.Option(help="copy, link or none.")] = ImageMode.COPY,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail, writing nothing, if anything would be dropped or converted, or an entry fails the import checks.")] = False,
    classes: Annotated[Path | None, typer.Option(help="YAML/JSON {old: new} to rename/merge, {old: null} to drop.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Processes (default: one per core), where the source can be cut into parts; same output.")] = None,
    allow_outside_root: Annotated[bool, typer.Option(
        "--allow-outside-root", help="Read images the annotations place outside the source folder.")] = False,
    csv_columns: Annotated[str | None, typer.Option(
        "--csv-columns", help="How a box CSV's columns map, e.g. image=ImageID,class=LabelName,bbox=bbox,"
        "coords=normalised (keys: image, class, one_class, bbox, bbox_format, xmin..ymax, x,y,w,h, width, height, "
        "coords).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a dataset between formats, streaming, with no project.

    The source gets the checks `import` makes; an entry that fails them is left out and listed
    (quarantined), or with --strict refused. Exit codes: 0 all written; 3 the rest written, some entries
    left out; 1 an error, nothing written."""
    from visionloop.formats.base import parse_csv_columns
    from visionloop.formats.convert import convert as run
    from visionloop.formats.convert import load_class_mapping

    mapping = load_class_mapping(classes) if classes is not None else None
    report = run(src, out, to=to, from_=from_, split=split, images=images, overwrite=overwrite, strict=strict,
                 classes=mapping, workers=workers, allow_outside_root=allow_outside_root,
                 csv_columns=parse_csv_columns(csv_columns) if csv_columns else None)
    render_write_report(report, as_json)
    missing = [r for r in report.quarantined if "not found" in r["reason"]]
    if missing and images is not ImageMode.NONE and not as_json:
        err_console.print(f"{len(missing)} left out because an image file is not there; to convert the "
                          "annotations alone (where they give the image size), pass --images none", soft_wrap=True)
    if report.quarantined:
        raise typer.Exit(3)


def formats(as_json: JsonOpt = False) -> None:
    """List every format and what it can hold."""
    from visionloop.formats import FORMATS

    rows = [{"name": s.name, "description": s.description, "reads": list(s.reads), "writes": list(s.writes),
             "holds": list(s.holds)} for s in FORMATS.values()]
    if as_json:
        print_json(rows)
        return
    table = Table("format", "reads", "writes", "also holds", "description")
    for r in rows:
        table.add_row(r["name"], ", ".join(r["reads"]), ", ".join(r["writes"]), ", ".join(r["holds"]),
                      r["description"])
    console.print(table)
