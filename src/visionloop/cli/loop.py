"""`visionloop loop run`: select → send to Label Studio; after the labels return, pull → version → train →
compare against the model, printing each step's result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from visionloop.cli.console import console, err_console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import render_json_or

app = typer.Typer(help="The closed loop: select, label in Label Studio, retrain, compare.", no_args_is_help=True)


def stages() -> Any:
    from visionloop.evaluate.model import compare_models
    from visionloop.ingest import import_samples
    from visionloop.loop.run import Stages
    from visionloop.train import train
    from visionloop.versions import create_version, show_version

    return Stages(version=create_version, show_version=show_version, train=train, compare=compare_models,
                  importer=import_samples)


def _report(as_json: bool) -> Any:
    def show(step: str, result: Any) -> None:
        if as_json:
            return
        if step == "selected":
            line = f"selected {len(result.picked)} images by {result.strategy}; tagged {result.tag!r} " \
                   f"(batch {result.batch_id})"
        elif step == "sent":
            line = f"sent {result.tasks_created} tasks to Label Studio project {result.ls_project} at {result.target}" \
                   f" ({result.predictions} model pre-labels)"
        elif step == "waiting":
            line = f"pulled: {result.tasks_labelled} of {result.tasks} tasks labelled — nothing to do yet"
        elif step == "pulled":
            line = f"pulled {result.tasks_labelled} labelled tasks: {result.images_changed} images changed " \
                   f"(+{result.added} -{result.deleted} ~{result.modified}), batch {result.batch_id}"
        elif step == "versioned":
            line = f"version {result.name}: {result.counts}"
        elif step == "trained":
            line = f"trained {result.model.name} (id {result.model.id}) in {result.seconds:.1f} s, {result.epochs} " \
                   f"epochs: {result.metrics}"
        else:
            table = Table("metric", result.older.model, result.newer.model, "change")
            for name, a, b, d in result.rows:
                table.add_row(name, "" if a is None else f"{a:.4f}", "" if b is None else f"{b:.4f}",
                              "" if d is None else f"{d:+.4f}")
            console.print(table)
            line = f"compared on {result.newer.version} valid: {result.better} images better, " \
                   f"{len(result.worse)} worse" + "".join(
                       f"\n  worse: image {w.image_id} {w.file_name}: {w.errors_before} → {w.errors_after} errors"
                       for w in result.worse[:20])
        err_console.print(f"[{step}] {line}", highlight=False, soft_wrap=True)
    return show


@app.command("run")
def run(
    model: Annotated[str | None, typer.Option("--model", "-m", help="The model to improve (name or id).")] = None,
    label_studio: Annotated[str | None, typer.Option("--label-studio", envvar="LABEL_STUDIO_URL",
                                                     help="The Label Studio server URL.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="LABEL_STUDIO_API_KEY", show_envvar=True,
                                                help="Label Studio API key (legacy or personal access token).")]
    = None,
    budget: Annotated[int, typer.Option("--budget", "-n", help="Images to select.")] = 10,
    strategy: Annotated[str, typer.Option(help="Selection strategy (see `visionloop select`).")] = "entropy",
    source: Annotated[str, typer.Option("--from", help="unlabelled | all | predictions")] = "unlabelled",
    tag: Annotated[str | None, typer.Option(help="Tag of the selection (default: select-<batch>).")] = None,
    conf: Annotated[float, typer.Option(help="Score floor of the model's pre-labels.")] = 0.25,
    resume: Annotated[bool, typer.Option("--continue", help="Continue a run after its labels are back: pull → "
                                                            "version → train → compare.")] = False,
    run_id: Annotated[int | None, typer.Option("--run", help="With --continue: the run (default: the latest "
                                                             "unfinished).")] = None,
    workers: Annotated[int, typer.Option(help="Version generation workers.")] = 0,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Start a loop run (select, send to Label Studio), or continue one (--continue) once labels are back. The
    run's state is kept in the project, so a stopped run continues from its last finished step."""
    from visionloop.loop.run import continue_run, start_run
    from visionloop.store import Store

    if api_key is None:
        raise typer.BadParameter("give the Label Studio API key (or set LABEL_STUDIO_API_KEY)",
                                 param_hint="--api-key")
    with Store.open(project) as store:
        if resume:
            result = continue_run(store, run_id, api_key=api_key, stages=stages(), workers=workers,
                                  report=_report(as_json))
        else:
            if model is None or label_studio is None:
                raise typer.BadParameter("a new run needs --model and --label-studio", param_hint="--model")
            result = start_run(store, model, url=label_studio, api_key=api_key, stages=stages(), budget=budget,
                               strategy=strategy, source=source, tag=tag, conf=conf, report=_report(as_json))
    if render_json_or(result, as_json) is None:
        return
    err_console.print(f"loop run {result.run_id}: {result.step}" + (f"; waiting for {result.waiting}"
                                                                    if result.waiting else " (done)"
                                                                    if result.step == "compared" else ""),
                      highlight=False, soft_wrap=True)


@app.command("status")
def status(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """The project's loop runs and the step each has reached."""
    from visionloop.loop.run import list_runs
    from visionloop.store import Store

    with Store.open(project) as store:
        runs = list_runs(store)
    if as_json:
        import json

        typer.echo(json.dumps([r.to_json() for r in runs]))
        return
    table = Table("run", "model", "step", "tag", "Label Studio project", "new model")
    for r in runs:
        s = r.state
        table.add_row(str(r.run_id), str(s.get("model")), r.step, str(s.get("tag")), str(s.get("ls_project", "")),
                      str(s.get("new_model", "")))
    console.print(table)
