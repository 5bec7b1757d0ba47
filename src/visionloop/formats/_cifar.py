"""CIFAR-10 and CIFAR-100 as their authors distribute them ("python version", https://www.cs.toronto.edu/~kriz/cifar.html),
shared by the `cifar10` and `cifar100` formats.

Layout (what the tarballs extract, and what torchvision.datasets.CIFAR10 / CIFAR100 read, torchvision/datasets/
cifar.py)::

    cifar-10-batches-py/   batches.meta  {label_names, num_cases_per_batch, num_vis}
                           data_batch_1 .. data_batch_5, test_batch
                               {batch_label, labels, data, filenames}
    cifar-100-python/      meta  {fine_label_names, coarse_label_names}
                           train, test  {batch_label, fine_labels, coarse_labels, data, filenames}

Each batch is a pickled dict; ``data`` is a uint8 array N×3072, each row a 32×32 colour image as three 1024-byte
planes R, G, B in row-major order. The folder given may be the batches folder or the one holding it.

Reading
    The pickles are loaded by a restricted unpickler that builds dicts, lists, strings and numpy arrays only (a
    pickle from elsewhere cannot run code). Every row becomes a PNG (see formats/_arrays.py) named
    ``<split>/<filenames[i]>`` (renamed ``_2``... when a name repeats; ``<split>/<batch>_<i>.png`` without
    filenames), with one whole-image Label. Splits: data_batch_* and train are ``train``, test_batch and test
    ``test``. Classes are the meta file's names in order (ids 0..). CIFAR-100: the class is the fine label; its
    coarse label is the class's supercategory and the annotation's ``coarse_label`` attribute (a fine class
    seen under two coarse classes is refused). A label outside the names, or a batch whose arrays disagree, is
    an error naming the file and row.

Writing
    The same layout in ``out/cifar-10-batches-py/`` (``out/cifar-100-python/``), so torchvision reads
    ``root=out``. CIFAR-10 train samples go to five data batches of equal size (torchvision reads exactly
    data_batch_1..5), test samples to test_batch. Splits other than train and test: val/valid/validation go to
    test, any other to train, counted as converted. Pixels as formats/_arrays.py says (32×32 RGB; other sizes
    resized, counted). CIFAR-100's coarse label: the annotation's ``coarse_label`` attribute, else the class's
    supercategory, else ``none`` (counted). Rows are held in memory until written (the format is one pickle per
    batch: 60,000 images are 184 MB).
"""

from __future__ import annotations

import io
import logging
import pickle
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Label
from visionloop.core.sample import Annotation, Sample
from visionloop.formats._arrays import Extractor, one_label, pixels
from visionloop.formats._tabular import UniqueNames
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport, quarantine, refuse_filled

log = logging.getLogger(__name__)

SIZE = 32
ROW = SIZE * SIZE * 3
TRAIN_BATCHES = 5
_TEST_SPLITS = {"test", "val", "valid", "validation"}


@dataclass(frozen=True)
class Variant:
    format: str
    folder: str  # the batches folder the tarball extracts
    meta: str
    names_key: str
    labels_key: str
    hundred: bool

    def files(self, root: Path) -> list[tuple[Path, str]]:
        """(file, split) of the batches present, train first."""
        if self.hundred:
            return [(root / n, n) for n in ("train", "test") if (root / n).is_file()]
        train = sorted((p for p in root.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)),
                       key=lambda p: int(p.name.rsplit("_", 1)[1]))
        test = [root / "test_batch"] if (root / "test_batch").is_file() else []
        return [(p, "train") for p in train] + [(p, "test") for p in test]


CIFAR10 = Variant("cifar10", "cifar-10-batches-py", "batches.meta", "label_names", "labels", False)
CIFAR100 = Variant("cifar100", "cifar-100-python", "meta", "fine_label_names", "fine_labels", True)


class _SafeUnpickler(pickle.Unpickler):
    """Builds plain containers and numpy arrays only: a pickle cannot name any other callable."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("codecs", "encode"),
        ("__builtin__", "bytes"), ("builtins", "bytes"),  # protocol 2 writes empty bytes so
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = _SafeUnpickler(io.BufferedReader(f), encoding="latin1").load()  # type: ignore[arg-type]
    except OSError as e:
        raise FormatError(f"cannot read ({e.strerror})", path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise FormatError(f"not a CIFAR python batch: {e}", path=path,
                          hint="the files are the pickles of the 'python version' of CIFAR") from None
    if not isinstance(data, dict):
        raise FormatError(f"not a CIFAR python batch (a pickled {type(data).__name__}, not a dict)", path=path)
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in data.items()}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def batches_folder(path: Path, v: Variant) -> Path | None:
    path = Path(path)
    for root in (path, path / v.folder):
        if (root / v.meta).is_file() and v.files(root):
            return root
    return None


def detect(path: Path, v: Variant) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    root = batches_folder(path, v)
    if root is None:
        files = "data_batch_N / test_batch" if not v.hundred else "train / test"
        return Detection.no(f"no {v.meta} with {files} beside it (here or in {v.folder}/)")
    names = ", ".join(p.name for p, _ in v.files(root))
    return Detection(0.95, f"{v.meta} and {names}")


def _names(root: Path, v: Variant) -> tuple[list[str], list[str] | None]:
    meta = _load(root / v.meta)
    names = meta.get(v.names_key)
    if not isinstance(names, list):
        raise FormatError(f"no {v.names_key} list", path=root / v.meta)
    coarse = meta.get("coarse_label_names") if v.hundred else None
    if v.hundred and not isinstance(coarse, list):
        raise FormatError("no coarse_label_names list", path=root / v.meta)
    return [_text(n) for n in names], [_text(n) for n in coarse] if coarse is not None else None


def _as_bytes(data: np.ndarray, path: Path) -> np.ndarray:
    """`data` of another element type — datumaro 1.13's CIFAR exporter pickles an object array of Python ints —
    as uint8, when every value is a whole number in 0..255; otherwise an error naming the first bad value."""
    try:
        values = data.astype(np.float64)
    except (TypeError, ValueError):
        raise FormatError("'data' holds values that are not numbers", path=path) from None
    bad = ~((values >= 0) & (values <= 255) & (values == np.floor(values)))
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise FormatError(f"'data' value {data[row, col]!r} is not a byte (0..255)", path=path,
                          where=f"row {row}, column {col}")
    return values.astype(np.uint8)


def _arrays(path: Path, v: Variant) -> tuple[np.ndarray, list[int], list[int] | None, list[str] | None]:
    batch = _load(path)
    data = batch.get("data")
    labels = batch.get(v.labels_key)
    if isinstance(data, np.ndarray) and data.dtype != np.uint8 and data.ndim == 2 and data.shape[1] == ROW:
        data = _as_bytes(data, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW:
        shape = getattr(data, "shape", None)
        raise FormatError(f"'data' must be a uint8 array of N rows of {ROW} values (got {shape})", path=path)
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        raise FormatError(f"'{v.labels_key}' must list one label per row of 'data' ({len(data)} rows)", path=path)
    coarse = batch.get("coarse_labels") if v.hundred else None
    if v.hundred and (not isinstance(coarse, list | np.ndarray) or len(coarse) != len(data)):
        raise FormatError(f"'coarse_labels' must list one label per row of 'data' ({len(data)} rows)", path=path)
    files = batch.get("filenames")
    names = [_text(n) for n in files] if isinstance(files, list) and len(files) == len(data) else None
    return data, [int(x) for x in labels], None if coarse is None else [int(x) for x in coarse], names


def read(path: Path, v: Variant, *, split: str | None = None) -> Reader:
    root = batches_folder(Path(path), v)
    if root is None:
        raise FormatError(f"no {v.format.upper()} python batches here", path=path,
                          hint=f"expected {v.meta} and the batches, here or in {v.folder}/")
    names, coarse_names = _names(root, v)
    files = v.files(root)
    supers: dict[int, int] = {}
    if v.hundred:  # a fine class's coarse class, known before any sample (the ClassMap holds it)
        assert coarse_names is not None
        for f, _ in files:
            _, fine, coarse, _ = _arrays(f, v)
            assert coarse is not None
            for row, (a, b) in enumerate(zip(fine, coarse, strict=True)):
                if not (0 <= a < len(names) and 0 <= b < len(coarse_names)):
                    continue  # refused with the sample
                if supers.setdefault(a, b) != b:
                    raise FormatError(f"fine class {names[a]!r} under two coarse classes ({coarse_names[supers[a]]!r}"
                                      f" and {coarse_names[b]!r})", path=f, where=f"row {row}")
    classes = ClassMap([ClassInfo(n, i, supercategory=coarse_names[supers[i]] if i in supers and coarse_names
                                  else None) for i, n in enumerate(names)])
    extractor = Extractor(f"visionloop-{v.format}-")

    def samples() -> Iterator[Sample]:
        unique = UniqueNames()
        report = WriteReport(v.format, str(path))  # renames of repeated names are logged, not a loss
        for f, file_split in files:
            data, labels, coarse, file_names = _arrays(f, v)
            s = split or file_split
            for i, label in enumerate(labels):
                if not 0 <= label < len(names):
                    quarantine(FormatError(f"label {label} is not among the {len(names)} classes of {v.meta}",
                                           path=f, where=f"row {i}"))
                    continue
                attributes: dict[str, Any] = {}
                if coarse is not None and coarse_names is not None:
                    if not 0 <= coarse[i] < len(coarse_names):
                        quarantine(FormatError(f"coarse label {coarse[i]} is not among the {len(coarse_names)} "
                                               f"coarse classes of {v.meta}", path=f, where=f"row {i}"))
                        continue
                    attributes["coarse_label"] = coarse_names[coarse[i]]
                base = file_names[i] if file_names else f"{f.name}_{i}.png"
                name = unique.claim(file_split, f"{file_split}/{base.replace('/', '_')}", report)
                rgb = data[i].reshape(3, SIZE, SIZE).transpose(1, 2, 0)
                ref = extractor.save(rgb, name)
                yield Sample(ref, (Annotation(names[label], Label(), attributes),), split=s)

    return Reader(classes, samples, source=Path(path))


def write(samples: Iterable[Sample], out: Path, v: Variant, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    folder = out / v.folder
    refuse_filled(out)
    report = WriteReport(v.format, str(out))
    if images is ImageMode.NONE:
        log.info("%s: the pixels are stored in the batches; ImageMode.NONE does not apply", v.format)
    names: list[str] = list(classes.names) if classes is not None else []
    coarse_names: list[str] = []
    rows: dict[str, list[tuple[np.ndarray, int, int, str]]] = {"train": [], "test": []}
    unique = UniqueNames()
    for sample in samples:
        label = one_label(sample, report, what=v.format.upper())
        if label is None:
            continue
        arr = pixels(sample, report, size=(SIZE, SIZE), mode="RGB", what=v.format.upper())
        if arr is None:
            continue
        split = "test" if (sample.split or "").lower() in _TEST_SPLITS else "train"
        if sample.split not in (None, split):
            report.converted[f"split {sample.split} -> {split} ({v.format.upper()} has train and test only)"] += 1
        if label not in names:
            names.append(label)
        coarse = -1
        if v.hundred:
            ann = next(a for a in sample.annotations if isinstance(a.geometry, Label) and a.label == label)
            info = classes.get(label) if classes is not None else None
            cname = ann.attributes.get("coarse_label") or (info.supercategory if info is not None else None)
            if not cname:
                report.converted["label: no coarse class -> coarse class 'none'"] += 1
                cname = "none"
            if str(cname) not in coarse_names:
                coarse_names.append(str(cname))
            coarse = coarse_names.index(str(cname))
        base = Path(sample.image.file_name).with_suffix(".png").name
        name = unique.claim(split, base, report)
        rows[split].append((arr.transpose(2, 0, 1).reshape(ROW), names.index(label), coarse, name))
        report.images += 1
        report.annotations["label"] += 1
    folder.mkdir(parents=True, exist_ok=True)

    def dump(file: str, obj: dict[str, Any]) -> None:
        with open(folder / file, "wb") as f:
            pickle.dump(obj, f, protocol=2)
        report.files += 1

    def batch(part: list[tuple[np.ndarray, int, int, str]], label: str) -> dict[str, Any]:
        data = np.stack([r[0] for r in part]) if part else np.zeros((0, ROW), np.uint8)
        d: dict[str, Any] = {"batch_label": label, "data": data, "filenames": [r[3] for r in part]}
        if v.hundred:
            d["fine_labels"] = [r[1] for r in part]
            d["coarse_labels"] = [r[2] for r in part]
        else:
            d["labels"] = [r[1] for r in part]
        return d

    if v.hundred:
        dump("meta", {"fine_label_names": names, "coarse_label_names": coarse_names})
        dump("train", batch(rows["train"], "training batch 1 of 1"))
        dump("test", batch(rows["test"], "testing batch 1 of 1"))
    else:
        per = -(-len(rows["train"]) // TRAIN_BATCHES)
        dump("batches.meta", {"num_cases_per_batch": per, "label_names": names, "num_vis": ROW})
        for k in range(TRAIN_BATCHES):
            dump(f"data_batch_{k + 1}", batch(rows["train"][k * per:(k + 1) * per],
                                             f"training batch {k + 1} of {TRAIN_BATCHES}"))
        dump("test_batch", batch(rows["test"], "testing batch 1 of 1"))
    return report
