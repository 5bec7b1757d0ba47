"""`select_from_log`: pick what to label next among the images the server logged (`visionloop select --from
predictions`), and make the picked ones project images, pre-labelled and tagged, in one undoable batch.

    sel = select_from_log(store, "det", budget=10, strategy="entropy", importer=import_samples)
    sel.picked          # [LogPick(log_id, image_id, file_name, score, boxes)] in pick order
    sel.batch_id        # the import batch: `visionloop undo` removes the images, their pre-labels and the tag

Scoring. A logged row holds the served answer of the model that answered (`model_name`, `model_version`). When
that is the model asked for (same registry id), its image is scored from the LOGGED predictions — no inference:
each box's logged confidence, measured and aggregated per image as `select` does. Any other row (logged by another
model or version) is scored by running the asked model's ONNX export on the logged image, and its pre-labels are
that model's boxes (counted in `rescored`). The served answer only holds boxes above the request's confidence
floor, so a logged image is measured on those boxes; re-inferred ones on the boxes above `conf`.

Candidates: one per distinct image content (the newest row of the same bytes), within [since, until), with at
least one logged prediction of `class_name` when given, and not already a project image (`in_project` counts
them). `budget` caps the images; `budget_boxes` the pre-labelled boxes the pick holds: images are taken in pick
order and the pick stops before the first one that would take the total over it.

k-center and hybrid use the embeddings the server stored in the log (every candidate must have one, from one
embedder); like is not offered here (targets are project images: import first, then `select --like`).

Import: the picked images go through the ordinary import of samples (`importer`, i.e.
`visionloop.ingest.import_samples`, passed in by the caller as the layer contract wants) as `predictions/<log
id>-<name>`, their boxes as `source=model` pre-labels with their confidences, each image tagged `tag` and carrying
its log id, model and time in its metadata: one batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from visionloop.core.classes import ClassMap
from visionloop.core.errors import VisionLoopError
from visionloop.core.geometry import Box, Label
from visionloop.core.sample import Annotation, ImageRef, Sample, Source
from visionloop.loop import strategies as st
from visionloop.loop.strategies import Aggregate, Strategy
from visionloop.store import models as registry
from visionloop.store import prediction_log as plog
from visionloop.store import tags as tag_store
from visionloop.store.project import Store

log = logging.getLogger(__name__)

Importer = Callable[..., Any]
FOLDER = "predictions"  # the picked images' file names start here
STRATEGIES = (Strategy.RANDOM, Strategy.LEAST_CONFIDENCE, Strategy.MARGIN, Strategy.ENTROPY, Strategy.KCENTER,
              Strategy.HYBRID)


@dataclass
class LogPick:
    log_id: int
    image_id: int | None  # the project image it became (None with save=False)
    file_name: str
    created_at: datetime
    score: float | None
    boxes: int  # pre-labels it carries
    scored_from: str  # "log" (the logged predictions) or "model" (re-inferred)

    def to_json(self) -> dict[str, Any]:
        return {"log_id": self.log_id, "image_id": self.image_id, "file_name": self.file_name,
                "created_at": self.created_at.isoformat(),
                "score": None if self.score is None else round(self.score, 6), "boxes": self.boxes,
                "scored_from": self.scored_from}


@dataclass
class LogSelection:
    model: str
    strategy: str
    aggregate: str | None
    logged: int  # rows in the log within the filters
    candidates: int  # distinct images not in the project yet
    in_project: int  # distinct logged images already in the project (not candidates)
    rescored: int  # candidates scored by running the model (logged by another model)
    budget: int | None
    budget_boxes: int | None
    tag: str | None
    batch_id: int | None
    picked: list[LogPick] = field(default_factory=list)
    boxes: int = 0
    import_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "strategy": self.strategy, "aggregate": self.aggregate, "from": "predictions",
                "logged": self.logged, "candidates": self.candidates, "in_project": self.in_project,
                "rescored": self.rescored, "budget": self.budget, "budget_boxes": self.budget_boxes,
                "tag": self.tag, "batch_id": self.batch_id, "boxes": self.boxes,
                "picked": [p.to_json() for p in self.picked], "import": self.import_counts}


def _annotations(preds: Sequence[dict[str, Any]], task: str, model_version: str = "") -> list[Annotation]:
    """Logged (or re-inferred) predictions as `source=model` pre-labels; `model_version` (`name#id`, as `label
    send` names a model's pre-labels) in their attributes."""
    attrs = {"model_version": model_version} if model_version else {}
    out: list[Annotation] = []
    for p in preds:
        conf = p.get("confidence")
        conf = None if conf is None else min(1.0, max(0.0, float(conf)))
        if "box" in p:
            b = p["box"]
            out.append(Annotation(str(p["class"]), Box(float(b["x0"]), float(b["y0"]), float(b["x1"]),
                                                       float(b["y1"])), attributes=attrs, source=Source.MODEL,
                                  confidence=conf))
        elif task == "classify" and "class" in p:
            out.append(Annotation(str(p["class"]), Label(), attributes=attrs, source=Source.MODEL,
                                  confidence=conf))
    return out


def _class_probs(preds: Sequence[dict[str, Any]]) -> np.ndarray:
    """A classifier's class probabilities: re-inferred ones whole; logged ones are the served top classes, the
    rest of the mass one more entry (so the measures see what the answer did not show)."""
    if preds and "_probs" in preds[0]:
        return np.asarray(preds[0]["_probs"], np.float64)
    confs = [float(q["confidence"]) for q in preds if q.get("confidence") is not None]
    return np.asarray(confs + [max(0.0, 1.0 - sum(confs))], np.float64)


def _boxes_from(pred: Any) -> list[dict[str, Any]]:
    """An `infer.Prediction` of a detector as the served answer's dicts."""
    return [{"box": {"x0": float(b[0]), "y0": float(b[1]), "x1": float(b[2]), "y1": float(b[3])},
             "class": pred.classes[int(c)], "class_id": int(c), "confidence": float(s)}
            for b, s, c in zip(pred.boxes, pred.scores, pred.labels, strict=True)]


def select_from_log(store: Store, model: str | int, *, budget: int | None = None, budget_boxes: int | None = None,
                    strategy: str = "entropy", aggregate: str = "max", since: datetime | None = None,
                    until: datetime | None = None, class_name: str | None = None, tag: str | None = None,
                    conf: float = 0.1, seed: int = 0, importer: Importer | None = None,
                    save: bool = True) -> LogSelection:
    """Pick logged images by `strategy` (see the module) and, unless `save` is False, import them as one batch."""
    if strategy not in [s.value for s in STRATEGIES]:
        raise VisionLoopError(f"--strategy {strategy!r} does not take --from predictions",
                              hint="use one of: " + ", ".join(s.value for s in STRATEGIES))
    strat = Strategy(strategy)
    if aggregate not in [a.value for a in Aggregate]:
        raise VisionLoopError(f"unknown --aggregate {aggregate!r}", hint="use one of: max, mean, sum")
    how = Aggregate(aggregate)
    if budget is None and budget_boxes is None:
        raise VisionLoopError("--from predictions needs --budget or --budget-boxes", hint="e.g. --budget 10")
    for name, value in (("--budget", budget), ("--budget-boxes", budget_boxes)):
        if value is not None and value < 1:
            raise VisionLoopError(f"{name} must be at least 1, got {value}")
    if save and importer is None:
        raise VisionLoopError("select_from_log needs the importer to save the pick")  # a caller's bug
    info = registry.get(store, model)
    rows = plog.query(store, since=since, until=until, class_name=class_name, newest_first=True)
    if not rows:
        raise VisionLoopError("the prediction log holds no images" + (" within these filters" if
                                                                       since or until or class_name else ""),
                              path=store.root, hint="serve with --log-predictions (`visionloop serve --help`)")
    in_project = {im.sha256 for im in tag_store.images(store)}
    seen: set[str] = set()
    pool: list[plog.LoggedPrediction] = []
    already = 0
    for r in rows:  # newest first: the newest row of each image content
        if r.image_sha256 in seen:
            continue
        seen.add(r.image_sha256)
        if r.image_sha256 in in_project:
            already += 1
        else:
            pool.append(r)
    pool.sort(key=lambda r: r.id)  # oldest first: ties go to the earlier logged image
    if not pool:
        raise VisionLoopError(f"every logged image within the filters ({already}) is already a project image",
                              path=store.root, hint="select among them with --from unlabelled")
    preds: list[list[dict[str, Any]]] = []
    origin: list[str] = []
    predictor = None
    for r in pool:
        if r.model_version == info.id:
            preds.append([p for p in r.predictions if p.get("confidence") is None or p["confidence"] >= conf]
                         if info.task != "classify" else list(r.predictions))
            origin.append("log")
            continue
        if predictor is None:
            e = info.export("onnx", "fp32")
            if e is None:
                raise VisionLoopError(f"model {info.name} has no ONNX export",
                                      hint=f"run `visionloop model export {info.name}`")
            from visionloop.infer import Predictor

            predictor = Predictor(registry.blob_file(store, e.sha256))
        from visionloop.infer.embed import read_rgb

        pred = predictor.predict(read_rgb(registry.blob_file(store, r.image_sha256)), conf=conf)
        if info.task == "classify":
            probs = np.asarray(pred.probabilities, dtype=np.float64)
            top = int(np.argmax(probs))
            preds.append([{"class": info.classes[top], "class_id": top, "confidence": float(probs[top]),
                           "_probs": probs.tolist()}])
        else:
            preds.append(_boxes_from(pred))
        origin.append("model")
    uncert = None
    if strat.uncertainty:
        measure = st.HYBRID_MEASURE if strat == Strategy.HYBRID else strat
        per_image = []
        for p in preds:
            if info.task == "classify":
                per_image.append(st.uncertainty(_class_probs(p)[None], measure))
            else:
                per_image.append(st.box_uncertainty(np.asarray([q["confidence"] for q in p], np.float64), measure))
        uncert = st.aggregate(per_image, how)
    emb = None
    if strat.embeddings:
        emb = _log_embeddings(store, [r.id for r in pool])
    order = st.choose(strat, len(pool), n=len(pool), uncertainty=uncert, embeddings=emb, seed=seed)
    picked_idx: list[int] = []
    boxes = 0
    for i in order.tolist():
        if budget is not None and len(picked_idx) >= budget:
            break
        n = len(_annotations(preds[i], info.task))
        if budget_boxes is not None and boxes + n > budget_boxes:
            break
        picked_idx.append(i)
        boxes += n
    result = LogSelection(info.name, str(strat), str(how) if strat.uncertainty else None, len(rows), len(pool),
                          already, origin.count("model"), budget, budget_boxes, None, None, boxes=boxes)
    names = [f"{FOLDER}/{pool[i].id}-{PurePosixPath(pool[i].image_name or pool[i].image_sha256[:16]).name}"
             for i in picked_idx]
    result.picked = [LogPick(pool[i].id, None, name, pool[i].created_at,
                             None if uncert is None else float(uncert[i]), len(_annotations(preds[i], info.task)),
                             origin[i]) for i, name in zip(picked_idx, names, strict=True)]
    if not save or not picked_idx:
        return result
    tag = tag or f"predictions-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    classes = ClassMap.from_names(info.classes)
    samples = []
    for i, name in zip(picked_idx, names, strict=True):
        r = pool[i]
        anns = _annotations(preds[i], info.task, f"{info.name}#{info.id}")
        for a in anns:
            if a.label not in classes:
                classes.add(a.label)
        ref = ImageRef(name, r.width, r.height, path=registry.blob_file(store, r.image_sha256),
                       sha256=r.image_sha256, tags=(tag,),
                       metadata={"prediction_log": {"id": r.id, "model": r.model_name, "model_id": r.model_version,
                                                    "logged_at": r.created_at.isoformat(),
                                                    "image_name": r.image_name}})
        samples.append(Sample(ref, tuple(anns)))
    from visionloop import formats

    reader = formats.Reader(classes, lambda: iter(samples), source=store.root / FOLDER)
    report = importer(store, reader, store.root / FOLDER, format="prediction-log",  # type: ignore[misc]
                      annotation_source=Source.MODEL)
    result.batch_id, result.tag, result.import_counts = report.batch_id, tag, dict(report.counts)
    ids = {im.file_name: im.id for im in tag_store.images(store) if im.file_name.startswith(FOLDER + "/")}
    for p in result.picked:
        p.image_id = ids.get(p.file_name)
    if any(p.image_id is None for p in result.picked):
        missing = next(p for p in result.picked if p.image_id is None)
        raise VisionLoopError(f"logged image {missing.log_id} did not become a project image",
                              path=store.root, hint=f"see the import batch {report.batch_id} "
                                                    "(`visionloop batch show`) for what was quarantined")
    log.info("selected %d of %d logged images by %s into batch %s", len(picked_idx), len(pool), strat,
             report.batch_id)
    return result


def _log_embeddings(store: Store, ids: Sequence[int]) -> np.ndarray:
    got = plog.embeddings(store, ids)
    lacking = [i for i in ids if i not in got]
    if lacking:
        raise VisionLoopError(f"{len(lacking)} of {len(ids)} logged images have no embedding (log id {lacking[0]})",
                              hint="serve with an embedder in the project (any `visionloop similar` run stores "
                                   "one) so the log embeds what it keeps, or use an uncertainty strategy")
    models = {got[i][0] for i in ids}
    if len(models) > 1:
        raise VisionLoopError(f"the logged images were embedded by different embedders: {sorted(models)}",
                              hint="filter by time (--since/--until) to one embedder")
    return np.stack([got[i][1] for i in ids])
