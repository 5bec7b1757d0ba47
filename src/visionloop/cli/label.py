"""`visionloop label send|pull`: the selected images to a labelling tool with pre-labels, and the labels back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visionloop.cli.console import console, err_console
from visionloop.cli.options import JsonOpt, ProjectOpt
from visionloop.cli.render import render_json_or

app = typer.Typer(help="Relabel: send a selection to Label Studio (or a CVAT task) with pre-labels, pull the "
                       "labels back as an undoable batch.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="LABEL_STUDIO_URL",
                                            help="The Label Studio server, e.g. http://127.0.0.1:8080 "
                                                 "(or LABEL_STUDIO_URL).")]
KeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="LABEL_STUDIO_API_KEY", show_envvar=True,
                                            help="Label Studio API key: personal access token or legacy token "
                                                 "(or LABEL_STUDIO_API_KEY).")]


def _need(value: str | None, flag: str) -> str:
    if not value:
        raise typer.BadParameter(f"give {flag}", param_hint=flag)
    return value


@app.command("send")
def send(
    to: Annotated[str, typer.Option("--to", help="label-studio (a running server) | cvat (a task folder)")]
    = "label-studio",
    tag: Annotated[str | None, typer.Option(help="Send the images with this tag (`visionloop select` makes one).")]
    = None,
    image: Annotated[list[int] | None, typer.Option("--image", help="An image id to send; repeat for several.")]
    = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Pre-label with this model's predictions "
                                                                    "(name, id or `latest`).")] = None,
    conf: Annotated[float, typer.Option(help="Score floor of the model's pre-labels.")] = 0.25,
    labels: Annotated[bool, typer.Option("--labels/--no-labels",
                                         help="Label Studio: also send each image's current labels as a "
                                              "prediction (`visionloop labels`).")] = True,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    ls_project: Annotated[int | None, typer.Option("--ls-project", help="Add the tasks to this Label Studio "
                                                                        "project (default: by title).")] = None,
    project_title: Annotated[str | None, typer.Option("--project-title", help="The Label Studio project's "
                                                                              "title (made when missing).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --to cvat: the task folder to write.")] = None,
    overwrite: Annotated[bool, typer.Option(help="With --to cvat: replace a non-empty --out.")] = False,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Send a selection for labelling with pre-labels. Label Studio: tasks in a project (made from the project's
    classes, or reused), images uploaded, predictions as pre-labels. CVAT: a CVAT for images 1.1 task folder
    (annotations.xml + images/) to create a task from."""
    from visionloop.loop.labelstudio import send_to_cvat, send_to_label_studio
    from visionloop.store import Store

    if to not in ("label-studio", "cvat"):
        raise typer.BadParameter("label-studio or cvat", param_hint="--to")
    with Store.open(project) as store:
        if to == "cvat":
            result = send_to_cvat(store, _need_path(out), tag=tag, image_ids=image, model=model, conf=conf,
                                  overwrite=overwrite)
        else:
            result = send_to_label_studio(store, _need(url, "--url"), _need(api_key, "--api-key"), tag=tag,
                                          image_ids=image, model=model, project_title=project_title,
                                          ls_project=ls_project, conf=conf, current_labels=labels)
    if render_json_or(result, as_json) is None:
        return
    pre = (f"{result.predictions} model pre-labels ({result.model})" if result.model else "no model pre-labels")
    if result.tool == "cvat":
        console.print(f"Wrote a CVAT task of {result.images} images to {result.target} with "
                      + (pre if result.model else f"their {result.labels} current labels"), highlight=False,
                      soft_wrap=True)
        return
    console.print(f"Label Studio project {result.ls_project} ({result.project_title!r}, "
                  f"{'created' if result.project_created else 'reused'}) at {result.target}: "
                  f"{result.tasks_created} tasks created, {result.tasks_already_there} already there; "
                  f"{pre}, {result.labels} current labels", highlight=False, soft_wrap=True)
    err_console.print(f"when labelled: visionloop label pull --from label-studio --ls-project {result.ls_project}",
                      highlight=False, soft_wrap=True)


def _need_path(out: Path | None) -> Path:
    if out is None:
        raise typer.BadParameter("--to cvat writes a folder: give --out DIR", param_hint="--out")
    return out


@app.command("pull")
def pull(
    ls_project: Annotated[int, typer.Option("--ls-project", help="The Label Studio project id.")],
    source: Annotated[str, typer.Option("--from", help="label-studio")] = "label-studio",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    project: ProjectOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Import the project's submitted annotations as one batch (`visionloop undo BATCH` takes it back) and print
    what changed."""
    from visionloop.ingest import import_samples
    from visionloop.loop.labelstudio import pull_from_label_studio
    from visionloop.store import Store

    if source != "label-studio":
        raise typer.BadParameter("label-studio (a CVAT export comes back with `visionloop import`)",
                                 param_hint="--from")
    with Store.open(project) as store:
        result = pull_from_label_studio(store, _need(url, "--url"), _need(api_key, "--api-key"), ls_project,
                                        importer=import_samples)
    if render_json_or(result, as_json) is None:
        return
    for c in result.changes:
        console.print(f"  image {c['image_id']} {c['file_name']}: +{c['added']} -{c['deleted']} ~{c['modified']} "
                      f"by {c['labelled_by']} at {c['labelled_at']}", highlight=False, soft_wrap=True)
    line = (f"{result.tasks_labelled} of {result.tasks} tasks labelled: {result.images_changed} images changed "
            f"(+{result.added} -{result.deleted} ~{result.modified} annotations), {result.images_unchanged} "
            "unchanged")
    line += (f"; batch {result.batch_id} (`visionloop undo {result.batch_id}` takes it back)"
             if result.batch_id is not None else "; nothing to import")
    console.print(line, highlight=False, soft_wrap=True)
    for reason, n in result.skipped.items():
        err_console.print(f"skipped {n} tasks: {reason}", highlight=False, soft_wrap=True)
    if result.several_annotations:
        err_console.print(f"{result.several_annotations} tasks had several submitted annotations: the latest "
                          "updated one was taken", highlight=False, soft_wrap=True)
