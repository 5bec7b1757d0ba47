"""visionloop predictions list | stats: the served images that `visionloop serve --log-predictions` kept."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console, print_json
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.core.errors import VisionLoopError

app = typer.Typer(help="The prediction log of `visionloop serve --log-predictions`: list, stats, drift plots.",
                  no_args_is_help=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="A served name or a registry model name.")]
SinceOpt = Annotated[str | None, typer.Option(help="From this time: ISO (2026-12-01, 2026-12-01T10:00) or an age "
                                              "(30m, 6h, 7d). UTC.")]
UntilOpt = Annotated[str | None, typer.Option(help="Before this time (same forms as --since).")]

AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """`--since` / `--until`: an ISO date or time (UTC unless it names a zone), or an age before now."""
    if text is None:
        return None
    m = AGE.match(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: float(m.group(1))})
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise VisionLoopError(f"not a time: {text!r}", hint="an ISO date or time (2026-12-01T10:00) or an age "
                                                            "(30m, 6h, 7d)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@app.command("list")
def list_(
    model: ModelOpt = None,
    below: Annotated[float | None, typer.Option(help="Only images whose top confidence is under this (or that "
                                                     "have no prediction).")] = None,
    class_name: Annotated[str | None, typer.Option("--class", help="Only images with a prediction of this class.")]
    = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first (0: all).")] = 50,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Logged images, newest first: time, model version, image, predictions, top confidence."""
    from visionloop.store import Store
    from visionloop.store import prediction_log as plog

    with Store.open(project) as store:
        rows = plog.query(store, model=model, below=below, class_name=class_name, since=when(since),
                          until=when(until), limit=limit or None, newest_first=True)
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    table = Table("id", "time (UTC)", "model", "image", "size", "predictions", "top conf", "classes")
    for r in rows:
        table.add_row(str(r.id), r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      f"{r.model}: {r.model_name} v{r.model_version}", r.image_sha256[:12],
                      f"{r.width}x{r.height}", str(len(r.predictions)),
                      "-" if r.max_confidence is None else f"{r.max_confidence:.3f}", ", ".join(r.classes))
    console.print(table)
    err_console.print(f"{len(rows)} logged image(s)" + (" (--limit reached)" if limit and len(rows) == limit else ""),
                      highlight=False)


@app.command("stats")
def stats(
    model: ModelOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    bucket: Annotated[str, typer.Option(help="hour | day")] = "hour",
    bins: Annotated[int, typer.Option(help="Confidence histogram bins over [0, 1].")] = 10,
    plot: Annotated[Path | None, typer.Option(help="Write the plots to this .png or .html file.")] = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Volume per hour or day, confidence histograms and the class mix over time (drift at a glance)."""
    from visionloop.store import Store
    from visionloop.store import prediction_log as plog

    if bucket not in ("hour", "day"):
        raise VisionLoopError(f"unknown --bucket {bucket!r}", hint="hour or day")
    with Store.open(project) as store:
        s = plog.stats(store, model=model, since=when(since), until=when(until), bucket=bucket,  # type: ignore[arg-type]
                       bins=bins)
    if plot is not None:
        from visionloop.loop.drift import write_plot

        err_console.print(f"plots written to {write_plot(s, plot)}", highlight=False)
    if as_json:
        print_json(s.to_json())
        return
    console.print(f"{s.images} images, {s.predictions} predictions, {s.no_prediction} without a prediction"
                  + (f"; {s.first:%Y-%m-%d %H:%M} to {s.last:%Y-%m-%d %H:%M} UTC" if s.first and s.last else ""),
                  highlight=False)
    for m, n in s.by_model.items():
        console.print(f"  {m}: {n}", highlight=False)
    classes = s.classes[:8]
    vol = Table(bucket, "images", *classes, title=f"per {bucket} (UTC); class columns count predictions")
    for b, n in s.volume.items():
        vol.add_row(b[:16].replace("T", " ") if bucket == "hour" else b[:10], str(n),
                    *(str(s.class_mix[b].get(c, 0)) for c in classes))
    console.print(vol)
    hist = Table("confidence", "predictions", "top per image", "", title="confidence histogram")
    peak = max([*s.confidence_hist, 1])
    for a, b, n, t in zip(s.edges, s.edges[1:], s.confidence_hist, s.top_confidence_hist, strict=False):
        hist.add_row(f"{a:.2f}-{b:.2f}", str(n), str(t), "█" * round(30 * n / peak))
    console.print(hist)
