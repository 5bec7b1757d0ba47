"""`select_images`: run a registered model over the project's images, score them, pick what to label next,
and save the pick as a tag (one undoable batch).

    sel = select_images(store, "det", budget=10, strategy="entropy", aggregate="max")
    sel.picked          # [Picked(image_id, file_name, score)] in pick order
    sel.batch_id        # `visionloop undo` takes the tag off again

The model's ONNX fp32 export runs on ONNX Runtime (`infer.Predictor`). A classifier's image gets the measure
of its class probabilities (a multi-label one: each class as yes/no, aggregated); a detector's (or instance
segmenter's) boxes above `conf` each get the measure of their score, aggregated per image (max | mean | sum).
k-center, hybrid and like need embeddings: `embedder` is an ONNX embedder file (`infer.OnnxEmbedder`); k-center
treats the labelled images as centres already covered. The strategies themselves are `loop.strategies`.

A committee (`model=["a", "b", ...]`, two or more models of one task and one class list) scores disagreement:
disagreement | vote-entropy | bald. A classifier's members' probabilities give vote entropy or mutual information
(disagreement is the mutual information); a detector's members' boxes above `conf` are matched into objects
(`strategies.box_clusters`) and each object scored, aggregated per image (max | mean | sum).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.loop import strategies as st
from visionloop.loop.strategies import Aggregate, Strategy
from visionloop.store import models as registry
from visionloop.store import tags as tag_store
from visionloop.store.project import Store
from visionloop.store.tags import ImageInfo

log = logging.getLogger(__name__)

#: the score floor of the detections a detector's uncertainty is measured on
DEFAULT_CONF = 0.1
SOURCES = ("unlabelled", "all")


@dataclass
class Picked:
    image_id: int
    file_name: str
    split: str | None
    score: float | None  # the uncertainty (or similarity, for like); None for random and k-center

    def to_json(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "file_name": self.file_name, "split": self.split,
                "score": None if self.score is None else round(self.score, 6)}


@dataclass
class Selection:
    model: str | None
    strategy: str
    aggregate: str | None
    source: str
    candidates: int
    budget: int
    tag: str | None
    batch_id: int | None
    picked: list[Picked] = field(default_factory=list)
    ties: int = 0  # candidates not picked within 1e-4 of the last picked score: the cut fell among (near) equals
    members: list[str] | None = None  # a committee's model names

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "strategy": self.strategy, "aggregate": self.aggregate, "from": self.source,
                "candidates": self.candidates, "budget": self.budget, "tag": self.tag, "batch_id": self.batch_id,
                "picked": [p.to_json() for p in self.picked], "ties": self.ties, "members": self.members}


def image_uncertainty(predictor: Any, files: Sequence[str], measure: Strategy, how: Aggregate, *,
                      conf: float = DEFAULT_CONF, multi_label: bool = False) -> np.ndarray:
    """One uncertainty per image file under `predictor` (an `infer.Predictor`)."""
    from visionloop.infer.embed import read_rgb

    if predictor.task == "semantic":
        raise VisionLoopError("selection by uncertainty takes classifiers and detectors, not semantic segmenters",
                              hint="use --strategy random or k-center")
    per_image: list[np.ndarray] = []
    for f in files:
        pred = predictor.predict(read_rgb(f), conf=conf)
        if predictor.task == "classify":
            p = np.asarray(pred.probabilities, dtype=np.float64)
            per_image.append(st.box_uncertainty(p, measure) if multi_label else st.uncertainty(p[None], measure))
        else:
            per_image.append(st.box_uncertainty(pred.scores, measure))
    return st.aggregate(per_image, how)


def committee_uncertainty(predictors: Sequence[Any], files: Sequence[str], measure: Strategy, how: Aggregate, *,
                          conf: float = DEFAULT_CONF, multi_label: bool = False) -> np.ndarray:
    """One disagreement per image file between `predictors` (`infer.Predictor`s of one task and class list)."""
    from visionloop.infer.embed import read_rgb

    per_image: list[np.ndarray] = []
    for f in files:
        image = read_rgb(f)
        preds = [p.predict(image, conf=conf) for p in predictors]
        if predictors[0].task == "classify":
            probs = np.stack([np.asarray(p.probabilities, dtype=np.float64) for p in preds])  # (K, C)
            per_image.append(st.committee_probs(probs[:, :, None] if multi_label else probs[:, None, :], measure))
        else:
            clusters = st.box_clusters([p.boxes for p in preds], [p.scores for p in preds], [p.labels for p in preds])
            per_image.append(st.committee_boxes(clusters, measure))
    return st.aggregate(per_image, how)


def _committee(store: Store, refs: Sequence[str | int]) -> tuple[list[Any], list[Any]]:
    """The members' registry entries and Predictors; refuses fewer than two, repeats, and mixed tasks or classes."""
    from visionloop.infer import Predictor

    if len(refs) < 2:
        raise VisionLoopError("a committee strategy needs at least two models",
                              hint="repeat --model: --model A --model B (models trained with different seeds)")
    infos = [registry.get(store, r) for r in refs]
    seen: dict[int, str] = {}
    for i in infos:
        if i.id in seen:
            raise VisionLoopError(f"model {i.name} is named twice in the committee", hint="name each model once")
        seen[i.id] = i.name
    first = infos[0]
    for i in infos[1:]:
        multi = bool(i.hyper.get("multi_label", False)), bool(first.hyper.get("multi_label", False))
        if i.task != first.task or list(i.classes) != list(first.classes) or multi[0] != multi[1]:
            what = (f"task {i.task} vs {first.task}" if i.task != first.task else
                    f"classes {i.classes} vs {first.classes}" if list(i.classes) != list(first.classes) else
                    f"multi-label {multi[0]} vs {multi[1]}")
            raise VisionLoopError(f"committee members must share the task and class list: model {i.name} differs "
                                  f"from {first.name} ({what})", hint="pick models trained on the same classes")
    if first.task == "semantic":
        raise VisionLoopError("committee selection takes classifiers and detectors, not semantic segmenters",
                              hint="use --strategy random or k-center")
    predictors = []
    for i in infos:
        e = i.export("onnx", "fp32")
        if e is None:
            raise VisionLoopError(f"model {i.name} has no ONNX export", hint=f"run `visionloop model export {i.name}`")
        predictors.append(Predictor(registry.blob_file(store, e.sha256)))
    return infos, predictors


def select_images(store: Store, model: str | int | Sequence[str | int] | None, *, budget: int,
                  strategy: str = "entropy",
                  aggregate: str = "max", source: str = "unlabelled", tag: str | None = None,
                  conf: float = DEFAULT_CONF, embedder: str | Path | bytes | Callable[[], str | Path | bytes] | None
                  = None, like: Sequence[str] = (), like_errors: int | None = None, seed: int = 0,
                  save: bool = True, split: str | None = None, has_tags: Sequence[str] = (),
                  not_tags: Sequence[str] = (), class_name: str | None = None,
                  meta: dict[str, str] | None = None) -> Selection:
    """Pick `budget` images of the project by `strategy` and tag them (unless `save` is False). `embedder` is an
    ONNX embedder (path or bytes), or a function that returns one (called only when the strategy needs it);
    `like` names the target images (ids or file names) for the like strategy; `like_errors` an evaluation whose
    error events' images are targets too (the images most like known failures). `model` may be a list: the
    committee of disagreement, vote-entropy and bald (one model in a list is that model). `split`, `has_tags`
    (every one), `not_tags` (none of them, e.g. the tags of earlier picks), `class_name` (images with a human
    annotation of it) and `meta` (image metadata key = value) narrow the candidates."""
    strat = Strategy(_choice(strategy, [s.value for s in Strategy], "--strategy"))
    refs = None if model is None or isinstance(model, str | int) else list(model)
    if refs is not None and not strat.committee:
        if len(refs) > 1:
            raise VisionLoopError(f"--strategy {strat} takes one --model, got {len(refs)}",
                                  hint="several models take --strategy disagreement, vote-entropy or bald")
        model, refs = (refs[0] if refs else None), None
    if strat.committee and refs is None:
        refs = [] if model is None else [model]
    how = Aggregate(_choice(aggregate, [a.value for a in Aggregate], "--aggregate"))
    _choice(source, list(SOURCES), "--from")
    if budget < 1:
        raise VisionLoopError(f"--budget must be at least 1, got {budget}")
    everything = tag_store.images(store)
    pool = tag_store.images(store, unlabelled_only=True) if source == "unlabelled" else everything
    targets = _resolve(everything, like) if strat == Strategy.LIKE else []
    if like_errors is not None and strat == Strategy.LIKE:
        targets += _error_images(store, everything, like_errors, {t.id for t in targets})
    if strat == Strategy.LIKE and not targets:
        raise VisionLoopError("the like strategy needs target images", hint="pass --like IMAGE (id or file name)")
    if targets:
        pool = [im for im in pool if im.id not in {t.id for t in targets}]
    narrowed = [f"--split {split}"] * (split is not None) + [f"--has-tag {t}" for t in has_tags] + \
        [f"--not-tag {t}" for t in not_tags] + [f"--class {class_name}"] * (class_name is not None) + \
        [f"--meta {k}={v}" for k, v in (meta or {}).items()]
    if narrowed:
        before = len(pool)
        where = tag_store.image_ids_where(store, class_name=class_name, meta=meta) \
            if class_name is not None or meta else None
        pool = [im for im in pool if (split is None or im.split == split) and all(t in im.tags for t in has_tags)
                and not any(t in im.tags for t in not_tags) and (where is None or im.id in where)]
        if not pool:
            raise VisionLoopError(f"none of the {before} {'unlabelled ' if source == 'unlabelled' else ''}images "
                                  f"match {' '.join(narrowed)}", path=store.root,
                                  hint="check the names with `visionloop stats`, or drop the filter")
    if not pool:
        raise VisionLoopError(f"no {'unlabelled ' if source == 'unlabelled' else ''}images to select from",
                              path=store.root, hint="import images without labels, or pass --from all")
    files = [registry.blob_file(store, im.sha256) for im in pool]
    info = None
    uncert: np.ndarray | None = None
    members: list[Any] = []
    if strat.committee:
        members, predictors = _committee(store, refs or [])
        uncert = committee_uncertainty(predictors, files, strat, how, conf=conf,
                                       multi_label=bool(members[0].hyper.get("multi_label", False)))
    elif strat.uncertainty:
        if model is None:
            raise VisionLoopError(f"--strategy {strat} needs a model", hint="pass --model NAME")
        info = registry.get(store, model)
        e = info.export("onnx", "fp32")
        if e is None:
            raise VisionLoopError(f"model {info.name} has no ONNX export", hint=f"run `visionloop model export "
                                                                               f"{info.name}`")
        from visionloop.infer import Predictor

        predictor = Predictor(registry.blob_file(store, e.sha256))
        measure = st.HYBRID_MEASURE if strat == Strategy.HYBRID else strat
        uncert = image_uncertainty(predictor, files, measure, how, conf=conf,
                                   multi_label=bool(info.hyper.get("multi_label", False)))
    elif model is not None:
        info = registry.get(store, model)
    emb = centers = queries = None
    if strat.embeddings:
        if embedder is None:
            raise VisionLoopError(f"--strategy {strat} needs an embedder", hint="pass --embedder FILE.onnx")
        from visionloop.infer.embed import OnnxEmbedder

        enc = OnnxEmbedder(embedder() if callable(embedder) else embedder)
        emb = enc.embed_files(files)
        if strat == Strategy.KCENTER:
            in_pool = {im.id for im in pool}
            covered = [registry.blob_file(store, im.sha256) for im in everything if im.id not in in_pool]
            centers = enc.embed_files(covered) if covered else None
        if strat == Strategy.LIKE:
            queries = enc.embed_files([registry.blob_file(store, t.sha256) for t in targets])
    k = min(budget, len(pool))
    index = st.choose(strat, k, n=len(pool), uncertainty=uncert, embeddings=emb, centers=centers, queries=queries,
                      seed=seed)
    scores: np.ndarray | None = uncert
    if strat == Strategy.LIKE:
        scores = st.cosine_to(emb, queries)  # type: ignore[arg-type]
    picked = [Picked(pool[i].id, pool[i].file_name, pool[i].split, None if scores is None else float(scores[i]))
              for i in index.tolist()]
    result = Selection(info.name if info else None, str(strat), str(how) if strat.uncertainty else None, source,
                       len(pool), budget, None, None, picked)
    if members:
        result.model, result.members = ",".join(m.name for m in members), [m.name for m in members]
    if scores is not None and picked and strat != Strategy.HYBRID:
        rest = np.delete(np.asarray(scores, np.float64), index)
        result.ties = int(np.sum(np.abs(rest - float(scores[index[-1]])) <= 1e-4))
    if save and picked:
        words = ["visionloop select", f"--strategy {strat}"] + ([f"--model {info.name}"] if info else []) + \
            [f"--model {m.name}" for m in members]
        ids = [p.image_id for p in picked]
        result.batch_id, result.tag = tag_store.add_tag(
            store, ids, tag, source=" ".join(words), summary={"strategy": str(strat), "budget": budget,
                                                              "from": source})
    log.info("selected %d of %d images by %s", len(picked), len(pool), strat)
    return result


def _choice(value: str, allowed: list[str], option: str) -> str:
    if value not in allowed:
        raise VisionLoopError(f"unknown {option} {value!r}", hint=f"use one of: {', '.join(allowed)}")
    return value


def _error_images(store: Store, images: list[ImageInfo], evaluation: int, known: set[int]) -> list[ImageInfo]:
    """The project images of an evaluation's error events (by their bytes), each once."""
    from visionloop.store import evaluations

    evaluations.get(store, evaluation)  # refuses an unknown evaluation, naming it
    shas = {e.sha256 for e in evaluations.events(store, evaluation) if e.sha256}
    if not shas:
        raise VisionLoopError(f"evaluation {evaluation} has no error events with images",
                              hint="evaluate a detector (`visionloop evaluate`) that makes mistakes")
    out = [im for im in images if im.sha256 in shas and im.id not in known]
    known.update(im.id for im in out)
    return out


def _resolve(images: list[ImageInfo], refs: Sequence[str]) -> list[ImageInfo]:
    """Images by id or file name, each ref exactly one image."""
    by_id = {im.id: im for im in images}
    by_name: dict[str, list[ImageInfo]] = {}
    for im in images:
        by_name.setdefault(im.file_name, []).append(im)
        by_name.setdefault(Path(im.file_name).name, []).append(im)
    out: list[ImageInfo] = []
    for ref in refs:
        found = [by_id[int(ref)]] if ref.isdigit() and int(ref) in by_id else by_name.get(ref, [])
        if len(found) != 1:
            raise VisionLoopError(f"--like {ref!r} {'matches no image' if not found else 'names several images'} "
                                  "of the project", hint="pass an image id or a unique file name")
        out.append(found[0])
    return out
