"""visionloop health | fix: parse, call the health stage, render (rich tables on stdout, or --json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json, progress
from visionloop.cli.options import JsonOpt, ProjectOpt

SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}
MAX_DIFF_ROWS = 50


def health(
    split: Annotated[str | None, typer.Option(help="Only this split (duplicates still look across splits).")] = None,
    version: Annotated[str | None, typer.Option("--dataset-version", "-d", help="Check a dataset version (name "
                                                "or id) instead of the project's images.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")] = None,
    input_size: Annotated[int, typer.Option(help="Model input size (longest side) for the tiny-object check.",
                                            min=1)] = 640,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Check the dataset: counts, sizes, class balance, malformed annotations, duplicates and leakage."""
    from visionloop.health import check
    from visionloop.store import Store

    with Store.open(project) as store, progress("Hashing images") as advance:
        report = check(store, split=split, version=version, input_size=input_size, progress=advance)
        if html is not None:
            from visionloop.health.report import write_html

            write_html(report, store, html)
            err_console.print(f"Wrote {html}")
    if as_json:
        print_json(report.to_json())
        return
    c = report.counts
    console.print(f"{c['images']} images ({c['distinct_files']} distinct files), {c['annotations']} annotations, "
                  f"{c['classes']} classes" + (f" — split {split}" if split else "")
                  + (f" — version {report.version}" if report.version else ""))
    splits = Table("split", "images", "annotations", "annotated", "null", "missing", title="Splits")
    for s, d in c["by_split"].items():
        splits.add_row(s, *(str(d[k]) for k in ("images", "annotations", "annotated", "null", "missing")))
    console.print(splits)
    classes = Table("class", "annotations", "images", "verdict", title="Classes")
    for cb in report.classes:
        classes.add_row(repr(cb.name), str(cb.annotations), str(cb.images), cb.verdict)
    console.print(classes)
    d = report.dimensions
    if d.get("width"):
        console.print(f"image sizes: width {d['width']['min']:g}–{d['width']['max']:g} (median "
                      f"{d['width']['median']:g}), height {d['height']['min']:g}–{d['height']['max']:g} (median "
                      f"{d['height']['median']:g}); {d['outliers']} outliers; {d['exif_rotated']} EXIF-rotated")
    b = report.box_sizes
    console.print(f"objects per image: mean {report.objects_per_image['mean']}, max {report.objects_per_image['max']}; "
                  f"boxes small/medium/large: {b['small']}/{b['medium']}/{b['large']}; tiny at {input_size}: "
                  f"{report.tiny_objects['count']}")
    if report.findings:
        t = Table("severity", "check", "count", "what to do", "fix", title="Findings")
        for f in report.findings:
            style = SEVERITY_STYLE[f.severity.value]
            t.add_row(f"[{style}]{f.severity.value}[/]", f.check, str(f.count), f.message, "yes" if f.fixable else "")
        console.print(t)
    else:
        console.print("[green]No findings: the dataset looks healthy.[/]")


def fix(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would change.")] = False,
    undo: Annotated[int | None, typer.Option("--undo", metavar="BATCH", help="Undo the fix batch BATCH.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Apply the unambiguous fixes as one batch (clip, drop zero-area and duplicate boxes, merge class-name
    variants, drop duplicate images), show the diff; undo a fix batch with --undo."""
    from visionloop.health import fix as run_fix
    from visionloop.health import undo as run_undo
    from visionloop.store import Store

    if undo is not None and dry_run:
        raise typer.BadParameter("--dry-run and --undo cannot be combined")
    with Store.open(project) as store:
        report = run_undo(store, undo) if undo is not None else run_fix(store, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    if report.undone:
        console.print(f"Undid fix batch {report.batch_id}: {report.counts['rows_restored']} rows restored")
        return
    if not report.changes:
        console.print("Nothing to fix.")
        return
    _diff(report)
    summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(report.counts.items()))
    if report.dry_run:
        console.print(f"Dry run, nothing changed: {summary}")
    else:
        console.print(f"Fixed as batch {report.batch_id}: {summary}. Undo with `visionloop fix --undo "
                      f"{report.batch_id}`.")


def _diff(report: Any) -> None:
    t = Table("op", "table", "row", "image", "change", title="Changes")
    for c in report.changes[:MAX_DIFF_ROWS]:
        style = "red" if c.op == "delete" else "yellow"
        t.add_row(f"[{style}]{c.op}[/]", c.table, str(c.row_id), c.image or "", c.what)
    console.print(t)
    if len(report.changes) > MAX_DIFF_ROWS:
        err_console.print(f"… and {len(report.changes) - MAX_DIFF_ROWS} more changes (--json lists them all)")
