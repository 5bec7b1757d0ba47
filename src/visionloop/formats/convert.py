"""Any format to any other with no project: read → write, streaming, into a folder written atomically."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from visionloop import runtime
from visionloop.core.classes import ClassMap, ClassMapping
from visionloop.core.errors import FormatError, VisionLoopError
from visionloop.core.geometry import kind
from visionloop.core.sample import LabelState, Sample
from visionloop.formats import registry
from visionloop.formats.base import (
    ImageMode,
    LossCounter,
    Reader,
    ReadPart,
    WriteReport,
    count_skips,
    dataset_root,
    drop_unheld,
    images_optional,
    quarantine,
    quarantine_reads,
    quarantine_record,
    strict_writes,
)
from visionloop.formats.base import allow_outside_root as outside_ok
from visionloop.formats.base import csv_columns as csv_columns_
from visionloop.formats.checks import check_image_sample
from visionloop.formats.output import atomic_output

log = logging.getLogger(__name__)


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False, format: str = "",
               protect: Iterable[str | Path] = ()) -> Iterator[Path]:
    """A temporary sibling folder that becomes `out` only if the block succeeds (see `formats.output`)."""
    with atomic_output(out, format=format, overwrite=overwrite, protect=protect) as tmp:
        yield tmp


def convert(src: str | Path, out: str | Path, *, to: str, from_: str | None = None, split: str | None = None,
            images: ImageMode | str = ImageMode.COPY, overwrite: bool = False, strict: bool = False,
            classes: ClassMapping | None = None, workers: int | None = None,
            allow_outside_root: bool = False, csv_columns: dict[str, str] | None = None) -> WriteReport:
    """Any format to any other, streaming, with no project.

    `strict`: any annotation the target cannot hold exactly is an error, and
    nothing is written. `classes`: rename, merge or drop classes on the way.
    `workers`: processes to convert with (default: one per core) where the source
    can be cut into parts and the target written in parts; the output is the
    same whatever the number. `allow_outside_root`: read images that the annotations
    place outside the source's folder (`../x.jpg`, absolute paths; refused by default). `csv_columns`: how a box
    CSV's columns map (`image=`, `class=`, `bbox=`, `coords=normalised`...; see formats/tfcsv.py).
    """
    with outside_ok(allow_outside_root), csv_columns_(csv_columns):
        return _convert(src, out, to=to, from_=from_, split=split, images=images, overwrite=overwrite, strict=strict,
                        classes=classes, workers=workers)


def _convert(src: str | Path, out: str | Path, *, to: str, from_: str | None, split: str | None,
             images: ImageMode | str, overwrite: bool, strict: bool, classes: ClassMapping | None,
             workers: int | None) -> WriteReport:
    registry.get(to)
    # what the reader sees and does not keep: counted, or with strict refused; with --images none, a reader
    # whose annotations give the image size does not need the image files
    with count_skips(strict) as skips, images_optional(ImageMode(images) is ImageMode.NONE):
        report = _convert_read(src, out, to=to, from_=from_, split=split, images=images, overwrite=overwrite,
                               strict=strict, classes=classes, workers=workers)
    report.skipped.update(skips)
    report.assumed.update(skips.assumed)
    return report


def _convert_read(src: str | Path, out: str | Path, *, to: str, from_: str | None, split: str | None,
                  images: ImageMode | str, overwrite: bool, strict: bool, classes: ClassMapping | None,
                  workers: int | None) -> WriteReport:
    reader = registry.read(Path(src), format=from_, split=split, flag="--from")
    class_map = reader.classes
    if classes is not None:
        class_map = classes.apply(reader.classes)
    check = _Check(Path(src), ImageMode(images), strict)
    with atomic_dir(Path(out), overwrite=overwrite, format=to, protect=[src]) as tmp, \
            (strict_writes() if strict else nullcontext()):
        n = runtime.available_workers() if workers is None else workers
        report = _write_in_parts(reader, tmp, to, class_map, ImageMode(images), classes, n, check) if n > 1 else None
        if report is None:
            dropped: Counter[str] = Counter()
            with check.reads():
                samples: Iterable[Sample] = check.samples(reader)
                if classes is not None:
                    samples = map_classes(samples, classes, dropped)
                report = registry.write(samples, tmp, format=to, classes=class_map, images=ImageMode(images))
            for what, k in dropped.items():
                report.dropped[what] += k
            report.fixes.update(check.fixes)
            report.quarantined.extend(check.quarantined)
    report.path = str(out)
    return report


class _Check:
    """The checks `import` makes (`formats.checks.check_image_sample`), applied on the way through.

    An entry that fails them is left out and recorded (`quarantined`), or with `strict` refused; what the
    checks repair (a box partly outside clipped, a zero-area one dropped, EXIF orientation) is counted in
    `fixes`. With `--images none` the image files are not read: geometry is checked against the declared
    sizes."""

    def __init__(self, src: Path, images: ImageMode, strict: bool) -> None:
        self.src, self.read_image, self.strict = src, images is not ImageMode.NONE, strict
        self.root = dataset_root(src)
        self.fixes: Counter[str] = Counter()
        self.quarantined: list[dict[str, Any]] = []

    def _sink(self, error: VisionLoopError) -> None:
        self.quarantined.append(quarantine_record(error, self.root))
        log.info("quarantined: %s", error)

    def reads(self) -> AbstractContextManager[None]:
        return nullcontext() if self.strict else quarantine_reads(self._sink)

    def samples(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        for sample in samples:
            try:
                checked, _, _ = check_image_sample(sample, fix=True, counts=self.fixes, source=self.src,
                                                   allow_truncated=not self.strict, read_image=self.read_image)
            except VisionLoopError as e:
                quarantine(e)  # raises when strict
                continue
            yield checked


def _write_in_parts(reader: Reader, tmp: Path, to: str, class_map: ClassMap, images: ImageMode,
                    mapping: ClassMapping | None, workers: int, check: _Check) -> WriteReport | None:
    """The conversion in parallel processes, or None when it cannot be (the caller then converts in one)."""
    module = registry.get(to).load()
    if reader.parts is None or not hasattr(module, "write_part") or not runtime.can_fork():
        return None
    parts = reader.parts(workers)
    if not parts or len(parts) < 2:
        return None

    spec = registry.get(to)

    def work(part: ReadPart) -> dict[str, Any]:
        dropped: Counter[str] = Counter()
        unheld = LossCounter("dropped")  # as registry.write: what the target cannot hold at all
        # in the worker: its own fixes, quarantine list and skips, sent back
        with check.reads(), count_skips(check.strict) as skips:
            samples: Iterable[Sample] = check.samples(part)
            if mapping is not None:
                samples = map_classes(samples, mapping, dropped)
            samples = drop_unheld(samples, writes=spec.writes, format=spec.name, dropped=unheld)
            result = module.write_part(samples, tmp, classes=class_map, images=images, start=part.start)
        dropped.update(unheld)
        return {"result": result, "dropped": dict(dropped), "fixes": dict(check.fixes),
                "quarantined": check.quarantined, "skipped": dict(skips),
                "assumed": dict(skips.assumed)}

    try:
        results = runtime.run_forked(parts, work)
    except runtime.PartFailed as e:
        log.info("converting in one process: %s", e)
        shutil.rmtree(tmp)
        tmp.mkdir()
        return None
    if reader.verify_parts is not None:
        reader.verify_parts(parts)
    report: WriteReport = module.finish_parts(tmp, [r["result"] for r in results], classes=class_map)
    for r in results:
        for what, k in r["dropped"].items():
            report.dropped[what] += k
        report.fixes.update(r["fixes"])
        report.quarantined.extend(r["quarantined"])
        report.skipped.update(r["skipped"])
        report.assumed.update(r["assumed"])
    return report


def map_classes(samples: Iterable[Sample], mapping: ClassMapping, dropped: Counter[str]) -> Iterator[Sample]:
    """Samples with classes renamed, merged or dropped; drops are counted in `dropped`."""
    for sample in samples:
        anns = []
        for ann in sample.annotations:
            new = mapping.name(ann.label)
            if new is None:
                dropped[f"{kind(ann.geometry)}: class {ann.label!r} dropped by the class mapping"] += 1
            else:
                anns.append(ann if new == ann.label else replace(ann, label=new))
        if len(anns) == len(sample.annotations) and all(a is b for a, b in zip(anns, sample.annotations, strict=True)):
            yield sample
        else:
            state = sample.state if anns or sample.state is not LabelState.ANNOTATED else LabelState.NULL
            yield replace(sample, annotations=tuple(anns), state=state)


def load_class_mapping(path: str | Path) -> ClassMapping:
    """A YAML or JSON file `{old: new}`; `old: null` drops a class, several olds to one new merge them."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise FormatError("class mapping file not found", path=path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise FormatError(f"malformed YAML: {getattr(e, 'problem', e)}", path=path,
                          where=f"line {mark.line + 1}" if mark else None) from None
    if not isinstance(data, dict):
        raise FormatError("expected a mapping of class names, `old: new` or `old: null` to drop", path=path)
    try:
        return ClassMapping({str(k): (None if v is None else str(v)) for k, v in data.items()})
    except ValueError as e:
        raise FormatError(str(e), path=path) from None
