"""MNIST and Fashion-MNIST as distributed: IDX files, shared by the `mnist` and `fashion_mnist` formats.

File format (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE"; what torchvision's
``read_sn3_pascalvincent_tensor`` parses, torchvision/datasets/mnist.py): a 4-byte magic number -- two zero
bytes, the element type (0x08 = unsigned byte) and the number of dimensions -- then each dimension as a 32-bit
big-endian integer, then the values in row-major order. Images: ``idx3`` (count, rows, columns), labels:
``idx1`` (count).

Layout: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz`` (as downloaded) and with ``.idx`` in place of ``-idx``
(Kaggle's copies); in the folder given, or in its ``raw/``, ``MNIST/raw/`` or ``FashionMNIST/raw/`` (where
torchvision keeps them). Splits: ``train`` and ``test`` (t10k).

The files do not say which dataset they hold: `fashion_mnist` claims a layout when the IDX files' folder or
one of the two above names Fashion-MNIST (``FashionMNIST/raw``, ``fashion-mnist``...), `mnist` any other;
`--from` picks either.

Reading: each image becomes a grey PNG ``<split>/<index>.png`` (index 0-based, 5 digits) with one whole-image
Label: MNIST's class names are the label numbers ("0".."9"), Fashion-MNIST's its ten names (torchvision's
``FashionMNIST.classes``). A labels file whose count differs from its images file, a bad magic number or a
truncated file is an error naming the file.

Writing: the four files, uncompressed, in ``out/``. Pixels as formats/_arrays.py says (28x28 grey; other modes
and sizes converted, counted). The label number: MNIST a class named by a number 0..255 is that number;
Fashion-MNIST one of its ten names is its index; any other class gets its 0-based position among the classes
(counted as converted: the files hold numbers only, the names are lost).
"""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Label
from visionloop.core.sample import Annotation, Sample
from visionloop.formats._arrays import Extractor, one_label, pixels
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport, quarantine, refuse_filled

SIZE = 28
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
_PREFIXES = (("train", "train"), ("t10k", "test"))
_FASHION = re.compile(r"fashion", re.IGNORECASE)


@dataclass(frozen=True)
class Variant:
    format: str
    fashion: bool


MNIST = Variant("mnist", False)
FASHION = Variant("fashion_mnist", True)


def _find(folder: Path, prefix: str, kind: str, dims: int) -> Path | None:
    for sep in ("-", "."):
        for gz in ("", ".gz"):
            p = folder / f"{prefix}-{kind}{sep}idx{dims}-ubyte{gz}"
            if p.is_file():
                return p
    return None


def _pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """(split, images, labels) present in `folder`."""
    out = []
    for prefix, split in _PREFIXES:
        images, labels = _find(folder, prefix, "images", 3), _find(folder, prefix, "labels", 1)
        if images is not None and labels is not None:
            out.append((split, images, labels))
    return out


def idx_folder(path: Path) -> Path | None:
    for folder in (path, path / "raw", path / "MNIST" / "raw", path / "FashionMNIST" / "raw"):
        if folder.is_dir() and _pairs(folder):
            return folder
    return None


def names_fashion(folder: Path) -> bool:
    """A folder on the IDX files' path, theirs or one of the two above (``FashionMNIST/raw``), names Fashion-MNIST."""
    return any(_FASHION.search(part) for part in folder.resolve().parts[-3:])


def detect(path: Path, v: Variant) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    folder = idx_folder(path)
    if folder is None:
        return Detection.no("no train-/t10k- images-idx3-ubyte with labels-idx1-ubyte (here, raw/, MNIST/raw/ or "
                            "FashionMNIST/raw/)")
    files = ", ".join(p.name for _, a, b in _pairs(folder) for p in (a, b))
    fashion = names_fashion(folder)
    if fashion != v.fashion:
        other = "fashion_mnist" if fashion else "mnist"
        why = "a folder on the path names Fashion-MNIST" if fashion else "no folder on the path names Fashion-MNIST"
        return Detection.no(f"IDX files ({files}), but {why}: {other} (pass --from {v.format} to read them so)")
    return Detection(0.95, f"IDX files {files}")


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[return-value]


def _header(f: BinaryIO, path: Path, dims: int) -> tuple[int, ...]:
    try:
        magic = f.read(4)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FormatError(f"cannot read ({e})", path=path) from None
    if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] != 0x08 or magic[3] != dims:
        raise FormatError(f"not an IDX file of unsigned bytes with {dims} dimension{'s' if dims > 1 else ''} "
                          f"(magic {magic.hex() or 'missing'}, expected 000008{dims:02x})", path=path, where="byte 0")
    raw = f.read(4 * dims)
    if len(raw) != 4 * dims:
        raise FormatError("truncated header", path=path, where="byte 4")
    return struct.unpack(f">{dims}I", raw)


def _labels(path: Path) -> np.ndarray:
    with _open(path) as f:
        (n,) = _header(f, path, 1)
        data = f.read(n + 1)
    if len(data) != n:
        raise FormatError(f"{len(data)} labels, the header says {n}", path=path)
    return np.frombuffer(data, np.uint8)


def _class_names(v: Variant, labels: Iterable[np.ndarray]) -> list[str]:
    if v.fashion:
        return list(FASHION_NAMES)
    top = max((int(a.max()) for a in labels if len(a)), default=9)
    return [str(i) for i in range(max(10, top + 1))]


def read(path: Path, v: Variant, *, split: str | None = None) -> Reader:
    folder = idx_folder(Path(path))
    if folder is None:
        raise FormatError("no MNIST IDX files here", path=path,
                          hint="expected train-images-idx3-ubyte and train-labels-idx1-ubyte (or t10k-...)")
    pairs = _pairs(folder)
    labels = {split_: _labels(lab) for split_, _, lab in pairs}
    names = _class_names(v, labels.values())
    classes = ClassMap.from_names(names)
    extractor = Extractor(f"visionloop-{v.format}-")

    def samples() -> Iterator[Sample]:
        for file_split, images, label_file in pairs:
            values = labels[file_split]
            with _open(images) as f:
                n, rows, cols = _header(f, images, 3)
                if n != len(values) and n == len(values) * rows * cols:
                    # datumaro's MNIST exporter writes the pixel count there (datumaro/plugins/data_formats/
                    # mnist.py, MnistExporter.save_images: `len(data)` of the flattened pixels)
                    raise FormatError(f"the header counts {n} images, the number of pixels of the {len(values)} "
                                      f"images that {label_file.name} labels, not the number of images",
                                      path=images, where="bytes 4-7",
                                      hint=f"write {len(values)} there (datumaro's MNIST exporter writes the pixel "
                                           "count; torchvision and the original files the image count)")
                if n != len(values):
                    raise FormatError(f"{n} images but {len(values)} labels in {label_file.name}", path=images)
                for i in range(n):
                    raw = f.read(rows * cols)
                    if len(raw) != rows * cols:
                        raise FormatError(f"truncated: image {i} of {n} is incomplete", path=images)
                    label = int(values[i])
                    if label >= len(names):
                        quarantine(FormatError(f"label {label} is not one of the {len(names)} Fashion-MNIST classes",
                                               path=label_file, where=f"label {i}"))
                        continue
                    ref = extractor.save(np.frombuffer(raw, np.uint8).reshape(rows, cols), f"{file_split}/{i:05d}.png")
                    yield Sample(ref, (Annotation(names[label], Label()),), split=split or file_split)

    return Reader(classes, samples, source=Path(path))


class _Numbers:
    """The label number of each class name (see the module)."""

    def __init__(self, v: Variant, classes: ClassMap | None, report: WriteReport) -> None:
        self.v, self.report = v, report
        self.known: dict[str, int] = {}
        self.order = list(classes.names) if classes is not None else []

    def natural(self, name: str) -> int | None:
        if self.v.fashion:
            return FASHION_NAMES.index(name) if name in FASHION_NAMES else None
        return int(name) if name.isdigit() and int(name) <= 255 else None

    def of(self, name: str) -> int:
        if name not in self.known:
            if name not in self.order:
                self.order.append(name)
            if all(self.natural(n) is not None for n in self.order):
                value = self.natural(name)
                assert value is not None
            else:
                value = self.order.index(name)
            if value > 255:
                raise FormatError(f"class {name!r} would be label number {value}: IDX labels are bytes (0..255)",
                                  path=self.report.path)
            if value in self.known.values():
                raise FormatError(f"class {name!r} and another class would both be label number {value}",
                                  path=self.report.path, hint="pass the classes (convert and export do)")
            self.known[name] = value
        value = self.known[name]
        if self.natural(name) != value:
            self.report.converted["label: class name -> label number (IDX files hold numbers only)"] += 1
        return value


def _write_idx(path: Path, data: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(bytes((0, 0, 0x08, data.ndim)) + struct.pack(f">{data.ndim}I", *data.shape))
        f.write(np.ascontiguousarray(data, np.uint8).tobytes())


def write(samples: Iterable[Sample], out: Path, v: Variant, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(v.format, str(out))
    what = "Fashion-MNIST" if v.fashion else "MNIST"
    numbers = _Numbers(v, classes, report)
    parts: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    for sample in samples:
        label = one_label(sample, report, what=what)
        if label is None:
            continue
        arr = pixels(sample, report, size=(SIZE, SIZE), mode="L", what=what)
        if arr is None:
            continue
        split = "test" if (sample.split or "").lower() in ("test", "val", "valid", "validation") else "train"
        if sample.split not in (None, split):
            report.converted[f"split {sample.split} -> {split} ({what} has train and test only)"] += 1
        value = numbers.of(label)
        parts[split][0].append(arr)
        parts[split][1].append(value)
        report.images += 1
        report.annotations["label"] += 1
    out.mkdir(parents=True, exist_ok=True)
    for prefix, split in _PREFIXES:
        imgs, labels = parts[split]
        _write_idx(out / f"{prefix}-images-idx3-ubyte",
                   np.stack(imgs) if imgs else np.zeros((0, SIZE, SIZE), np.uint8))
        _write_idx(out / f"{prefix}-labels-idx1-ubyte", np.array(labels, np.uint8))
        report.files += 2
    return report
