"""`check(store)`: the whole health report, the one function the CLI, the API and the web UI call."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from visionloop.core.errors import NotFoundError
from visionloop.health import duplicates, findings, quarantine, stats
from visionloop.health.load import (
    UNASSIGNED,
    Annotations,
    annotation_count,
    caption_counts,
    chunks_of,
    class_counts,
    declared_sizes,
    iter_annotations,
    load_classes,
    load_images,
    load_version,
    select_split,
)
from visionloop.health.result import DuplicatePair, Finding, HealthReport, Severity
from visionloop.store.project import Store

log = logging.getLogger(__name__)

ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def check(store: Store, *, split: str | None = None, version: str | int | None = None, input_size: int = 640,
          duplicates_search: bool = True, workers: int = 2, cache: bool = True,
          progress: Callable[[int], None] | None = None) -> HealthReport:
    """Statistics, malformed annotations and duplicates of the project, or of one version (or one split).

    `input_size` is the model input the tiny-object check assumes (longest side);
    `duplicates_search=False` skips decoding images (statistics and annotation checks only).
    """
    if input_size <= 0:
        raise ValueError(f"input_size must be positive, got {input_size}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if version is not None:
        everything, all_anns, classes, version_name, captions = load_version(store, version)
    else:
        everything = load_images(store)
    if split is not None and split not in set(everything.split.tolist()):
        known = ", ".join(sorted(set(everything.split.tolist()))) or "none"
        raise NotFoundError(f"no split {split!r} in this {'version' if version is not None else 'project'} "
                            f"(splits: {known})", path=store.root, hint="pass one of those to --split, or leave it out")
    # the annotations are read chunk by chunk (whole images each) into the statistics and the malformed-
    # annotation checks, so memory is flat in their number; a version's are decoded whole, then cut likewise
    if version is not None:
        images, anns = select_split(everything, all_anns, split) if split is not None else (everything, all_anns)
        chunks: Iterable[Annotations] = chunks_of(anns)
        capacity = len(anns)
    else:
        images = load_images(store, split=split) if split is not None else everything
        classes = load_classes(store)
        captions = caption_counts(store)
        chunks = iter_annotations(store, images)
        capacity = annotation_count(store)  # at most this many (the rows of other splits are left out)
    per_class_variants: dict[int, int] = {}  # which spelling of a class-name variant is kept needs the counts
    if findings.class_groups(classes, {}):
        if version is not None:
            u, n = np.unique(anns.class_id, return_counts=True)
            per_class_variants = dict(zip(u.tolist(), n.tolist(), strict=True))
        else:
            per_class_variants = class_counts(store, split=split)
    timings["load_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    tally = stats.Tally(images, classes, input_size, capacity=capacity)
    flagged = findings.Flagged(images, classes, per_class_variants)
    for part in chunks:
        tally.add(part)
        flagged.add(part)
    del chunks
    cnt = tally.counts()
    if captions:  # captions have no class: counted apart from the annotations (when there are any)
        for sp, d in cnt["by_split"].items():
            d["captions"] = captions.get(sp, 0)
        cnt["captions"] = sum(d["captions"] for d in cnt["by_split"].values())
    per_class = {cid: v["annotations"] for cid, v in cnt["_per_class"].items()}
    dims, f_dims = stats.dimensions(images)
    balance, f_balance = stats.class_balance(cnt, classes)
    del cnt["_per_class"]
    opi = tally.objects_per_image()
    sizes = tally.box_sizes()
    tiny, f_tiny = tally.tiny_objects()
    maps, f_bias = tally.heatmaps()
    flagged_anns, m = flagged.result()
    project = store if version is None else None  # a version's items have no declared sizes nor class rows
    f_mal = findings.findings(project, images, flagged_anns, classes, m, per_class,
                              declared_sizes(store, images) if version is None else {})
    timings["statistics_s"] = time.perf_counter() - t
    pairs: list[DuplicatePair] = []
    dup_summary: dict[str, Any] = {}
    f_dup: list[Finding] = []
    if duplicates_search and len(everything):
        t = time.perf_counter()
        pairs, dup_summary, f_dup, _ = duplicates.find(store, everything, split=split, workers=workers,
                                                       cache=cache, progress=progress)
        timings["duplicates_s"] = time.perf_counter() - t
        timings.update({f"duplicates_{k}": v for k, v in dup_summary.pop("timings").items()})
    all_findings = f_mal + f_dup + f_balance + f_tiny + f_bias + f_dims + quarantine.findings(project)
    all_findings.sort(key=lambda f: ORDER[f.severity])
    findings.name_images(all_findings, images, tally.first_images, classes)  # every finding names its images
    timings["total_s"] = time.perf_counter() - t0
    report = HealthReport(split, input_size, cnt, dims, balance, opi, sizes, tiny, maps, dup_summary, pairs,
                          all_findings, {k: round(v, 3) for k, v in timings.items()},
                          version=version_name if version is not None else None)
    log.info("health of %s%s: %d findings in %.1f s", store.root, f" ({split})" if split else "",
             len(all_findings), timings["total_s"])
    return report


__all__ = ["UNASSIGNED", "check"]
