"""`visionloop loop run`: select → send to Label Studio; then, once labels are back, pull → version → train →
compare against the model the run started from.

    stages = Stages(version=create_version, show_version=show_version, train=train, compare=compare_models,
                    importer=import_samples)                       # passed in by the CLI (stages of one layer)
    run = start_run(store, "det", url=..., api_key=..., budget=10, strategy="entropy", source="unlabelled")
    run = continue_run(store, run.run_id, api_key=..., stages=stages)

State lives in the store: the run is the selection's batch (its id is the run id), and its summary holds
`loop_run` — the model, tag, Label Studio URL and project, and each finished step's result — written after each
step, so an interrupted run continues from the last finished step (`loop run --continue`). The retrain uses the
model's own recipe and hyper-parameters: a new version with the recipe of the model's version (split, preprocess,
augment, seed), and `train` with the model's task, architecture, initial weights, epochs, image size, batch, lr,
weight decay, seed, zoom and EMA. The comparison is `evaluate.compare_models` on the new version's valid split
(both models evaluated there), whose rows and worse images the run keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from visionloop.core.errors import NotFoundError, VisionLoopError
from visionloop.loop.labelstudio import pull_from_label_studio, send_to_label_studio
from visionloop.store import batches as batch_store
from visionloop.store import models as registry
from visionloop.store.project import Store

log = logging.getLogger(__name__)

KEY = "loop_run"
STEPS = ("selected", "sent", "pulled", "versioned", "trained", "compared")


@dataclass
class Stages:
    """The stage functions a run calls beyond `loop` (the CLI passes them: stages do not import each other)."""

    version: Callable[..., Any]  # versions.create_version(store, recipe, workers=...)
    show_version: Callable[..., Any]  # versions.show_version(store, name or id)
    train: Callable[..., Any]  # train.train(store, version, task=..., ...)
    compare: Callable[..., Any]  # evaluate.model.compare_models(store, a, b, version, split)
    importer: Callable[..., Any]  # ingest.import_samples
    select: Callable[..., Any] | None = None  # loop.select.select_images (default)
    select_log: Callable[..., Any] | None = None  # loop.from_log.select_from_log (default)


@dataclass
class LoopRun:
    run_id: int
    state: dict[str, Any]
    done_now: list[str] = field(default_factory=list)  # the steps this invocation finished
    waiting: str | None = None  # why it stopped before the end (labels not back yet)

    @property
    def step(self) -> str:
        return str(self.state.get("step", ""))

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "step": self.step, "done_now": self.done_now, "waiting": self.waiting,
                **{k: v for k, v in self.state.items() if k != "step"}}


def _save(store: Store, run_id: int, state: dict[str, Any]) -> None:
    with store.engine.begin() as conn:
        row = batch_store.batch_row(conn, run_id, root=store.root)
        batch_store.set_summary(conn, run_id, {**dict(row.summary or {}), KEY: state})


def load_run(store: Store, run_id: int | None = None) -> LoopRun:
    """A run by id (its selection batch), or the latest unfinished one."""
    with store.engine.begin() as conn:
        rows = [(r.id, (r.summary or {}).get(KEY)) for r in batch_store.list_rows(conn)]
    runs = [(i, s) for i, s in rows if isinstance(s, dict)]
    if run_id is not None:
        found = [(i, s) for i, s in runs if i == run_id]
        if not found:
            raise NotFoundError(f"no loop run {run_id} in this project", path=store.root,
                                hint="`visionloop loop status` lists the runs")
    else:
        found = [(i, s) for i, s in runs if s.get("step") != "compared"][-1:]
        if not found:
            raise NotFoundError("no unfinished loop run in this project", path=store.root,
                                hint="start one with `visionloop loop run --model M --label-studio URL`")
    return LoopRun(found[0][0], dict(found[0][1]))


def list_runs(store: Store) -> list[LoopRun]:
    with store.engine.begin() as conn:
        return [LoopRun(r.id, dict(r.summary[KEY])) for r in batch_store.list_rows(conn)
                if isinstance((r.summary or {}).get(KEY), dict)]


def start_run(store: Store, model: str | int, *, url: str, api_key: str, stages: Stages, budget: int = 10,
              budget_boxes: int | None = None, strategy: str = "entropy", source: str = "unlabelled",
              tag: str | None = None, conf: float = 0.25, project_title: str | None = None,
              report: Callable[[str, Any], None] | None = None,
              client_factory: Any = None) -> LoopRun:
    """Select and send for labelling; the run waits for the labels (`continue_run`). The model must name the
    version it was trained on (its recipe makes the retrain's version): refused before anything is picked or sent
    when it does not (a gallery model), rather than after the labelling."""
    info = registry.get(store, model)
    if info.version_id is None:
        what = "gallery model" if info.hyper.get("gallery") else "model"
        raise VisionLoopError(f"{what} {info.name} was trained on no version of this project, so the loop could not "
                              "retrain it once the labels are back",
                              hint=f"pick with `visionloop select --model {info.name}` and label with `visionloop "
                                   "label send` / `label pull`, then `visionloop train` a model and loop with it")
    if source == "predictions":
        sel = (stages.select_log or _select_log())(store, info.id, budget=budget, budget_boxes=budget_boxes,
                                                   strategy=strategy, tag=tag,
                                                   importer=stages.importer)
    else:
        sel = (stages.select or _select())(store, info.id, budget=budget, strategy=strategy, source=source, tag=tag)
    if sel.batch_id is None:
        raise VisionLoopError("the selection changed nothing (every picked image already had the tag)",
                              hint="pass a new --tag")
    run = LoopRun(sel.batch_id, {"step": "selected", "model": info.name, "model_id": info.id, "tag": sel.tag,
                                 "from": source, "strategy": strategy, "budget": budget,
                                 "images": len(sel.picked), "label_studio": url})
    _save(store, run.run_id, run.state)
    run.done_now.append("selected")
    if report:
        report("selected", sel)
    kw = {"client_factory": client_factory} if client_factory is not None else {}
    sent = send_to_label_studio(store, url, api_key, tag=sel.tag, model=None if source == "predictions" else info.id,
                                conf=conf, project_title=project_title or f"visionloop loop {sel.batch_id}", **kw)
    run.state.update(step="sent", ls_project=sent.ls_project, tasks=sent.tasks_created)
    _save(store, run.run_id, run.state)
    run.done_now.append("sent")
    run.waiting = "labels: label the tasks in Label Studio, then `visionloop loop run --continue`"
    if report:
        report("sent", sent)
    return run


def continue_run(store: Store, run_id: int | None, *, api_key: str, stages: Stages, workers: int = 0,
                 report: Callable[[str, Any], None] | None = None, client_factory: Any = None,
                 **train_overrides: Any) -> LoopRun:
    """Pull the labels, version, retrain and compare, from the run's last finished step."""
    run = load_run(store, run_id)
    st = run.state

    def done(step: str, result: Any, **update: Any) -> None:
        st.update(step=step, **update)
        _save(store, run.run_id, st)
        run.done_now.append(step)
        if report:
            report(step, result)

    if st["step"] == "selected":
        raise VisionLoopError(f"loop run {run.run_id} selected images but did not send them",
                              hint=f"send them: `visionloop label send --tag {st['tag']} ...`, or start a new run")
    if st["step"] == "sent":
        kw = {"client_factory": client_factory} if client_factory is not None else {}
        pulled = pull_from_label_studio(store, st["label_studio"], api_key, int(st["ls_project"]),
                                        importer=stages.importer, **kw)
        if pulled.tasks_labelled == 0:
            run.waiting = (f"labels: none of the {pulled.tasks} tasks of Label Studio project {st['ls_project']} "
                           "has a submitted annotation yet")
            if report:
                report("waiting", pulled)
            return run
        done("pulled", pulled, pull_batch=pulled.batch_id, labelled=pulled.tasks_labelled,
             changed=pulled.images_changed)
    info = registry.get(store, int(st["model_id"]))
    if st["step"] == "pulled":
        if info.version_id is None:
            raise VisionLoopError(f"model {info.name} names no version, so its recipe is unknown",
                                  hint="train the model on a version")
        recipe = stages.show_version(store, info.version_id).recipe
        v = stages.version(store, recipe, workers=workers)
        done("versioned", v, version=v.name)
    if st["step"] == "versioned":
        h = info.hyper
        kw = {"task": info.task, "model": info.arch, "weights": h.get("weights"), "epochs": h.get("epochs"),
              "imgsz": h.get("imgsz"), "batch": h.get("batch", 8), "lr": h.get("lr", 1e-3),
              "weight_decay": h.get("weight_decay", 5e-4), "seed": h.get("seed", 0), "patience": h.get("patience"),
              "time_budget": h.get("time_budget"), "zoom": h.get("zoom", 0.0), "zoom_off": h.get("zoom_off", 0.0),
              "ema": h.get("ema") is not None, "name": f"{info.name}-loop{run.run_id}"}
        if info.task == "classify":
            kw["multi_label"] = h.get("multi_label")
        kw.update(train_overrides)
        trained = stages.train(store, st["version"], **kw)
        done("trained", trained, new_model=trained.model.name, new_model_id=trained.model.id)
    if st["step"] == "trained":
        cmp = stages.compare(store, info.id, int(st["new_model_id"]), st["version"], "valid")
        done("compared", cmp, comparison=cmp.to_json())
    return run


def _select() -> Callable[..., Any]:
    from visionloop.loop.select import select_images

    return select_images


def _select_log() -> Callable[..., Any]:
    from visionloop.loop.from_log import select_from_log

    return select_from_log
