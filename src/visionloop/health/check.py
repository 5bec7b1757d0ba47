"""`check(store)`: the whole health report, the one function the CLI, the API and the web UI call."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from visionloop.core.errors import NotFoundError
from visionloop.health import duplicates, findings, quarantine, stats
from visionloop.health.load import (
    UNASSIGNED,
    declared_sizes,
    load_annotations,
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
        everything, all_anns, classes, version_name = load_version(store, version)
    else:
        everything = load_images(store)
    if split is not None and split not in set(everything.split.tolist()):
        known = ", ".join(sorted(set(everything.split.tolist()))) or "none"
        raise NotFoundError(f"no split {split!r} in this {'version' if version is not None else 'project'} "
                            f"(splits: {known})", path=store.root, hint="pass one of those to --split, or leave it out")
    if version is not None:
        images, anns = select_split(everything, all_anns, split) if split is not None else (everything, all_anns)
    else:
        images = load_images(store, split=split) if split is not None else everything
        anns = load_annotations(store, images)
        classes = load_classes(store)
    timings["load_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    cnt = stats.counts(images, anns, classes)
    per_class = {cid: v["annotations"] for cid, v in cnt["_per_class"].items()}
    dims, f_dims = stats.dimensions(images)
    balance, f_balance = stats.class_balance(cnt, classes)
    del cnt["_per_class"]
    opi = stats.objects_per_image(images, anns)
    sizes = stats.box_sizes(images, anns)
    tiny, f_tiny = stats.tiny_objects(images, anns, classes, input_size)
    maps, f_bias = stats.heatmaps(images, anns, classes)
    m = findings.detect(images, anns, classes, per_class)
    project = store if version is None else None  # a version's items have no declared sizes nor class rows
    f_mal = findings.findings(project, images, anns, classes, m, per_class,
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
    findings.name_images(all_findings, images, anns, classes)  # every finding names its images
    timings["total_s"] = time.perf_counter() - t0
    report = HealthReport(split, input_size, cnt, dims, balance, opi, sizes, tiny, maps, dup_summary, pairs,
                          all_findings, {k: round(v, 3) for k, v in timings.items()},
                          version=version_name if version is not None else None)
    log.info("health of %s%s: %d findings in %.1f s", store.root, f" ({split})" if split else "",
             len(all_findings), timings["total_s"])
    return report


__all__ = ["UNASSIGNED", "check"]
