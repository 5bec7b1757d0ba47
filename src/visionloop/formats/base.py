"""What every format module shares: detection results, readers, write reports, image helpers.

A format module (`formats/<name>.py`) is the only place that knows its format,
and offers three functions:

    detect(path: Path) -> Detection          # cheap: names a file, reads first lines only
    read(path: Path, *, split: str | None = None) -> Reader
    write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport

Readers stream: `Reader` is an iterable of `Sample` plus the `ClassMap`,
which may grow while iterating when the format only names classes inside its
annotation files (VOC). Writers stream too and count what they could not write.

Parallel conversion (`formats.convert`, `formats.parallel`) needs two optional
pieces: a reader that can cut its samples into `ReadPart`s (`Reader.parts`,
COCO), and a writer module with

    write_part(samples, out, *, classes, images, start) -> dict   # in a worker process
    finish_parts(out, results, *, classes) -> WriteReport        # once, after every part

(YOLO, VOC, COCO). The output is the same as one process writes.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError, LossError, VisionLoopError
from visionloop.core.geometry import kind
from visionloop.core.sample import ImageRef, LabelState, Sample

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Detection:
    """How sure a format is that a path is in it (0 = no, 1 = certain), and why.

    `unreadable`: the format found a file that is its annotation file by name or place (COCO's
    `_annotations.coco.json`, a JSON file given directly...) but cannot read it (empty, not UTF-8,
    not the structure the format needs). Detection then stops with that error instead of falling
    back to a weaker guess, so a broken annotation file is never read as another format.
    """

    score: float
    reason: str
    unreadable: Path | None = None

    @classmethod
    def no(cls, reason: str) -> Detection:
        return cls(0.0, reason)

    @classmethod
    def broken(cls, file: Path, reason: str) -> Detection:
        return cls(0.0, reason, unreadable=file)


@dataclass
class ReadPart:
    """One of the consecutive pieces a reader can cut its samples into, to be read in another process.

    `start`: how many samples the earlier parts hold. A reader that offers parts promises that no two
    parts hold images whose file names share a stem (compared case-insensitively, folders ignored),
    so writers that name files after images can write parts side by side; and that every class a
    part meets is already in the reader's `classes`. When a part finds the file is not as the cut
    assumed, it raises: the caller then reads the whole file in one process.
    """

    start: int
    _samples: Callable[[], Iterator[Sample]]

    def __iter__(self) -> Iterator[Sample]:
        return self._samples()


@dataclass
class Reader:
    """Samples of a dataset, streamed, and its classes.

    `parts(n)`, where a format offers it: the samples as at most `n` `ReadPart`s that can be read
    in parallel, in order (None when the source cannot be cut, or is too small to be worth it).
    """

    classes: ClassMap
    _samples: Callable[[], Iterator[Sample]]
    source: Path | None = None
    parts: Callable[[int], list[ReadPart] | None] | None = None
    #: called once every part was read (each in its own process), with the parts: the checks that need them all
    #: (COCO: annotation ids unique across parts); raises what reading in one process would have raised
    verify_parts: Callable[[list[ReadPart]], None] | None = None

    def __iter__(self) -> Iterator[Sample]:
        return self._samples()


class ImageMode(StrEnum):
    """What a writer does with the image files."""

    COPY = "copy"  # copy the bytes next to the annotations
    LINK = "link"  # hard-link where possible, else copy
    NONE = "none"  # annotations only


#: set by `strict_writes()`: every WriteReport made meanwhile refuses its first loss
_STRICT: ContextVar[bool] = ContextVar("visionloop_strict_writes", default=False)


@contextmanager
def strict_writes() -> Iterator[None]:
    """Within this block any writer's first drop or lossy conversion raises LossError."""
    token = _STRICT.set(True)
    try:
        yield
    finally:
        _STRICT.reset(token)


#: set by `allow_outside_root()`: image paths outside the dataset's folder may be read
_OUTSIDE_OK: ContextVar[bool] = ContextVar("visionloop_outside_root", default=False)


@contextmanager
def allow_outside_root(allow: bool = True) -> Iterator[None]:
    """Within this block readers may read images (and YOLO split folders) outside the dataset's folder."""
    token = _OUTSIDE_OK.set(allow)
    try:
        yield
    finally:
        _OUTSIDE_OK.reset(token)


#: set by `quarantine_reads()`: where a reader sends a sample it cannot read instead of raising
_QUARANTINE: ContextVar[Callable[[VisionLoopError], None] | None] = ContextVar("visionloop_quarantine", default=None)


@contextmanager
def quarantine_reads(sink: Callable[[VisionLoopError], None]) -> Iterator[None]:
    """Within this block a reader that meets a sample it cannot read (a malformed annotation file of one
    image, an impossible box, an unknown class) hands the error to `sink` and skips that sample, instead of
    raising. The importer uses it to land everything usable and quarantine the rest."""
    token = _QUARANTINE.set(sink)
    try:
        yield
    finally:
        _QUARANTINE.reset(token)


def quarantining() -> bool:
    """Whether a sample that cannot be read is quarantined here (inside `quarantine_reads()`) rather than refused."""
    return _QUARANTINE.get() is not None


def quarantine(error: VisionLoopError) -> None:
    """One sample cannot be read: raise `error` (the default, strict) or, inside `quarantine_reads()`,
    record it; the caller then skips that sample (the image with all its annotations)."""
    sink = _QUARANTINE.get()
    if sink is None:
        raise error
    sink(error)


def quarantine_record(error: VisionLoopError, root: Path) -> dict[str, Any]:
    """What a quarantined entry is recorded as: its file (relative to the dataset's folder `root` when
    inside it), the element, the reason."""
    file = error.path or ""
    if file and "://" not in file:
        rel = os.path.relpath(os.path.abspath(file), root)
        if not rel.startswith(".."):
            file = PurePosixPath(Path(rel)).as_posix()
    return {"file": file, "element": error.where, "reason": error.message}


#: set by `images_optional()`: the caller will not read the image files (convert --images none)
_IMAGES_OPTIONAL: ContextVar[bool] = ContextVar("visionloop_images_optional", default=False)

#: the hint every "image not found" error gives: the annotations can be converted alone
NO_IMAGES_HINT = "to convert the annotations alone, pass --images none"


@contextmanager
def images_optional(optional: bool = True) -> Iterator[None]:
    """Within this block the image files will not be read (`convert --images none`): a reader whose annotations
    carry the image size yields a sample without a file (`ImageRef.path` None) where the image is missing,
    instead of refusing it."""
    token = _IMAGES_OPTIONAL.set(optional)
    try:
        yield
    finally:
        _IMAGES_OPTIONAL.reset(token)


def images_are_optional() -> bool:
    return _IMAGES_OPTIONAL.get()


#: set by `csv_columns()`: how a box CSV's columns map (see formats/tfcsv.py, `convert --csv-columns`)
_CSV_COLUMNS: ContextVar[dict[str, str] | None] = ContextVar("visionloop_csv_columns", default=None)

#: the flag that passes `csv_columns` on the command line, named by every error that asks for a mapping
CSV_COLUMNS_FLAG = "--csv-columns"


@contextmanager
def csv_columns(mapping: dict[str, str] | None) -> Iterator[None]:
    """Within this block a box CSV reader maps its columns as `mapping` says (`image=<column>`, `class=<column>`,
    `bbox=<column>`, `xmin=<column>`..., `coords=pixel|normalised`, `one_class=<name>`; see formats/tfcsv.py)
    instead of recognising them by their header names. None: recognise them."""
    token = _CSV_COLUMNS.set(dict(mapping) if mapping else None)
    try:
        yield
    finally:
        _CSV_COLUMNS.reset(token)


def csv_columns_given() -> dict[str, str]:
    return dict(_CSV_COLUMNS.get() or {})


def parse_csv_columns(text: str) -> dict[str, str]:
    """`image=ImageID,class=LabelName,coords=normalised` as a mapping (the `--csv-columns` value)."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise FormatError(f"{CSV_COLUMNS_FLAG} expects key=value pairs separated by commas, got {part!r}",
                              hint="e.g. image=ImageID,class=LabelName,xmin=XMin,ymin=YMin,xmax=XMax,ymax=YMax")
        mapping[key.strip().lower()] = value.strip()
    return mapping


class Skips(Counter[str]):
    """What readers saw and did not keep, "element: reason" -> count (see `count_skips`)."""

    def __init__(self, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict
        #: what readers read by a rule of the layout rather than by what a file says (`assume`), "element: reading"
        self.assumed: Counter[str] = Counter()


#: set by `count_skips()`: where readers count the elements they see and do not keep
_SKIPS: ContextVar[Skips | None] = ContextVar("visionloop_skips", default=None)


@contextmanager
def count_skips(strict: bool = False) -> Iterator[Skips]:
    """Within this block every element a reader sees and does not keep (`skip()`) is counted in the Skips
    yielded; with `strict` the first one raises instead (nothing is ever read partially in silence).
    `convert` and `import` read inside it and report the counts as `skipped`."""
    skips = Skips(strict)
    token = _SKIPS.set(skips)
    try:
        yield skips
    finally:
        _SKIPS.reset(token)


def skip(what: str, reason: str, *, path: str | Path, where: str | None = None, n: int = 1,
         refuse_strict: bool = True) -> None:
    """A reader saw `n` × `what` (a region, a part box, a file...) and does not keep it, because `reason`.

    Counted under "what: reason" inside `count_skips()`; there with `strict`, a FormatError naming the file
    and element; outside any (a library caller iterating a Reader), a warning in the log. Every reader calls
    this for what it leaves out, so a partial read is never silent. `refuse_strict=False` for an element that
    holds nothing of the dataset (Roboflow's umbrella category): counted, never refused."""
    skips = _SKIPS.get()
    if skips is not None and skips.strict and refuse_strict:
        raise FormatError(f"{what} not read: {reason}", path=path, where=where,
                          hint="drop --strict to read the rest and count what is skipped")
    if skips is None:
        log.warning("%s%s: %s not read: %s", path, f" ({where})" if where else "", what, reason)
        return
    skips[f"{what}: {reason}"] += n


def assume(what: str, reading: str, *, path: str | Path, n: int = 1) -> None:
    """A reader read `n` × `what` (an image no CSV row names...) as `reading` (labelled empty...) by a rule of the
    layout, not because a file says so. Counted under "what: reading" in `Skips.assumed` inside `count_skips()`
    (`convert` and `import` report it as `assumed`, so the user sees it); never refused by `strict`, since the
    layout documents that meaning; outside any, logged."""
    skips = _SKIPS.get()
    if skips is None:
        log.info("%s: %d x %s read as %s", path, n, what, reading)
        return
    skips.assumed[f"{what}: {reading}"] += n


def skip_unpaired(files: Iterable[Path], used: set[str], *, what: str, reason: str, path: str | Path) -> None:
    """Count (`skip`) the annotation files among `files` that no image used (their absolute paths in `used`):
    a mask or label file whose image is not there is never left out in silence."""
    left = [f for f in files if os.path.abspath(f) not in used]
    if left:
        skip(what, reason, path=path, where=f"e.g. {left[0].name}", n=len(left))


def dataset_root(path: Path) -> Path:
    """The folder a dataset given as `path` may read from: the folder itself; for a file, its folder, or
    the one above when that folder is `annotations/` (COCO keeps images beside it)."""
    path = Path(os.path.abspath(path))
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name.lower() == "annotations" else path.parent


#: folders a reader made for the images its annotation files embed (TFRecord, LabelMe imageData): their files
#: are the dataset's own bytes, never "outside the dataset folder"
_EXTRACTED: set[str] = set()


def extraction_folder(prefix: str) -> Path:
    """A new temporary folder for the images a reader extracts from its annotation files, removed at
    interpreter exit; `check_inside` accepts the files in it."""
    import atexit
    import tempfile

    tmp = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, tmp, True)
    _EXTRACTED.add(os.path.normpath(tmp) + os.sep)
    return Path(tmp)


def check_inside(target: str | Path, root: Path, *, path: str | Path, where: str) -> None:
    """Refuse a file or folder outside `root` (lexically: `..` and absolute paths; a symbolic link inside
    the dataset is the user's own arrangement), unless `allow_outside_root()` is in effect."""
    text = str(target)
    if "://" in text or _OUTSIDE_OK.get():
        return
    full = os.path.normpath(os.path.join(root, text))
    if _EXTRACTED and any(full.startswith(folder) for folder in _EXTRACTED):
        return  # extracted by the reader from the dataset's own files
    base = os.path.normpath(root)
    if full != base and not full.startswith(base.rstrip(os.sep) + os.sep):
        raise FormatError(f"{text} is outside the dataset folder {base}", path=path, where=where,
                          hint="pass --allow-outside-root to read it anyway")


def inside_root(samples: Iterable[Sample], root: Path, *, source: Path) -> Iterator[Sample]:
    """The samples, refusing any whose image file lies outside `root` (see `check_inside`)."""
    for sample in samples:
        if sample.image.path is not None:
            check_inside(sample.image.path, root, path=source, where=sample.image.file_name)
        yield sample


class LossCounter(Counter[str]):
    """A Counter of losses that, when strict, refuses the first one: the write stops right there."""

    def __init__(self, what: str, strict: bool = False) -> None:
        super().__init__()
        self.what = what
        self.strict = strict or _STRICT.get()

    def __setitem__(self, key: str, value: int) -> None:
        if self.strict and value > self.get(key, 0):
            raise LossError(f"would be {self.what}: {key}", hint="drop --strict to accept the loss")
        super().__setitem__(key, value)


@dataclass
class WriteReport:
    """What a writer wrote and what it could not.

    Inside `strict_writes()` the first drop or lossy conversion raises LossError,
    so nothing lossy is ever written (callers write into a folder that is
    discarded on error).
    """

    format: str
    path: str
    images: int = 0
    annotations: Counter[str] = field(default_factory=Counter)  # by geometry kind
    dropped: LossCounter = field(default_factory=lambda: LossCounter("dropped"))  # "kind: reason" -> count
    converted: LossCounter = field(default_factory=lambda: LossCounter("converted lossily"))
    files: int = 0
    fixes: Counter[str] = field(default_factory=Counter)  # what the source checks repaired (clipped, ...)
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # entries left out: file, element, reason
    skipped: Counter[str] = field(default_factory=Counter)  # what the reader saw and did not keep (`skip`)
    assumed: Counter[str] = field(default_factory=Counter)  # what the reader read by a rule of the layout (`assume`)

    def drop(self, what: str, reason: str, n: int = 1) -> None:
        self.dropped[f"{what}: {reason}"] += n

    def add(self, data: dict[str, Any]) -> None:
        """Add the counts of another report's `to_json()` (a part written in another process)."""
        self.images += data["images"]
        self.files += data["files"]
        self.annotations.update(data["annotations"])
        for key, n in data["dropped"].items():
            self.dropped[key] += n
        for key, n in data["converted"].items():
            self.converted[key] += n
        self.skipped.update(data.get("skipped") or {})
        self.assumed.update(data.get("assumed") or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": self.path,
            "images": self.images,
            "annotations": dict(self.annotations),
            "dropped": dict(self.dropped),
            "converted": dict(self.converted),
            "files": self.files,
            "fixes": dict(self.fixes),
            "quarantined": self.quarantined,
            "skipped": dict(self.skipped),
            "assumed": dict(self.assumed),
        }


#: geometry kinds a writer is never handed unless its FormatSpec lists them in `writes`: `registry.write` (and the
#: parallel convert) drop them on the way in and count them, "kind: <format> has no ...", so a format without a
#: place for them needs no code for them, and nothing reaches a writer that would misread it (a line as a box)
UNHELD: dict[str, str] = {"polyline": "has no line geometry (open polylines)", "caption": "cannot hold captions"}


def drop_unheld(samples: Iterable[Sample], *, writes: tuple[str, ...], format: str,
                dropped: Counter[str]) -> Iterator[Sample]:
    """The samples without the annotations of an `UNHELD` kind the format does not write, each counted in `dropped`
    (a `LossCounter` refuses the first under `strict_writes()`). A sample left with none becomes NULL."""
    gone = tuple(k for k in UNHELD if k not in writes)
    if not gone:
        yield from samples
        return
    for sample in samples:
        kept = [a for a in sample.annotations if kind(a.geometry) not in gone]
        if len(kept) == len(sample.annotations):
            yield sample
            continue
        for a in sample.annotations:
            k = kind(a.geometry)
            if k in gone:
                dropped[f"{k}: {format} {UNHELD[k]}"] += 1
        yield replace(sample, annotations=tuple(kept), state=None if kept else LabelState.NULL)


def count_state_change(report: WriteReport, sample: Sample, *, becomes: LabelState, why: str) -> None:
    """A writer whose format reads every image without annotations back as `becomes` (NULL: it lists every image
    as labelled; MISSING: it has no way to say "labelled, nothing in it") counts a sample in the other state as
    converted, `"missing -> null (why)"`, so the change is never silent."""
    state = sample.state
    if not sample.annotations and state is not None and state is not becomes and state is not LabelState.ANNOTATED:
        report.converted[f"{state.value} -> {becomes.value} ({why})"] += 1


BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark some editors and Windows tools write first


def strip_bom(data: bytes) -> bytes:
    """The bytes without a leading UTF-8 byte-order mark (orjson, ijson and byte sniffing refuse it)."""
    return data[3:] if data[:3] == BOM else data


def open_text_bytes(path: str | Path) -> BinaryIO:
    """A file opened for binary reading, positioned after its UTF-8 byte-order mark if it has one."""
    f = open(path, "rb")  # noqa: SIM115 - the caller closes it
    if f.read(3) != BOM:
        f.seek(0)
    return f


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def relative_name(path: Path, root: Path) -> str:
    return PurePosixPath(path.relative_to(root)).as_posix()


def image_size(path: str | Path) -> tuple[int, int]:
    """Upright (width, height) of an image file, reading its header only.

    Upright means EXIF orientation applied (a portrait photo stored as landscape
    with orientation 6 is taller than wide), the space annotations live in.
    """
    from PIL import Image, UnidentifiedImageError

    from visionloop.formats.images import check_pixels, header_exif

    old_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the limit is ours: check_pixels
    try:
        with Image.open(path) as im:
            w, h = im.size
            check_pixels(w, h, path=path)
            if im.format in ("JPEG", "TIFF", "WEBP", "PNG") and header_exif(im).get(0x0112, 1) in (5, 6, 7, 8):
                return h, w
            return w, h
    except FileNotFoundError:
        hint = ("the annotations do not give the image size: the image files are needed" if images_are_optional()
                else NO_IMAGES_HINT)
        raise ImageError("image file not found", path=path, hint=hint) from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"too many pixels to decode safely ({e})", path=path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"not a readable image ({e})", path=path) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit


def with_size(ref: ImageRef) -> ImageRef:
    """The same ImageRef with width/height filled from the file when missing."""
    if ref.width is not None and ref.height is not None:
        return ref
    if ref.path is None:
        raise ImageError("image size unknown and no file to read it from", path=ref.file_name,
                         hint="the annotations do not give the size: the image files are needed")
    w, h = image_size(ref.path)
    return replace(ref, width=w, height=h)


def find_image(folder: Path, stem_or_name: str, *, context: Path | None = None) -> Path:
    """The image file `name` in `folder`, or the one with that stem and an image extension."""
    candidate = folder / stem_or_name
    if candidate.suffix and candidate.is_file():
        return candidate
    for ext in IMAGE_EXTENSIONS:
        for e in (ext, ext.upper()):
            p = folder / f"{stem_or_name}{e}"
            if p.is_file():
                return p
    raise ImageError(f"image {stem_or_name!r} not found in {folder}", path=context or folder)


def place_image(ref: ImageRef, dest: Path, mode: ImageMode) -> bool:
    """Put the image's bytes at `dest` as `mode` says. False when there was nothing to do."""
    if mode is ImageMode.NONE:
        return False
    if ref.path is None:
        raise ImageError("no image bytes to write (the sample has no path)", path=ref.file_name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = ref.path
    if "://" in src:
        import fsspec

        with fsspec.open(src, "rb") as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out)
        return True
    if os.path.exists(dest):
        os.remove(dest)
    if mode is ImageMode.LINK:
        try:
            os.link(src, dest)
            return True
        except OSError:
            pass
    try:
        shutil.copyfile(src, dest)
    except FileNotFoundError:
        raise ImageError("image file not found", path=src, hint=NO_IMAGES_HINT) from None
    return True


def refuse_filled(out: Path, *subfolders: str | Path) -> None:
    """Refuse, before writing anything, to mix a new dataset with files already in `out`: each of
    `subfolders` (relative to `out`; none given: `out` itself) must be missing or empty."""
    for sub in subfolders or (".",):
        folder = out / sub
        if folder.is_dir() and any(folder.iterdir()):
            what = "is not empty" if Path(sub) == Path(".") else f"already has files in {Path(sub).as_posix()}/"
            raise FormatError(f"the output folder {what}", path=out,
                              hint="write into an empty folder; nothing is overwritten")


def safe_name(file_name: str) -> str:
    """A file name that cannot climb out of the output folder."""
    if "/" not in file_name and "\\" not in file_name and file_name not in ("", ".", ".."):
        return file_name  # the common case: a plain name
    parts = [p for p in PurePosixPath(file_name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    if not parts:
        raise FormatError("empty image file name", path=file_name)
    return "/".join(parts)


def iter_files(root: Path, *, suffixes: Iterable[str]) -> Iterator[Path]:
    """Files under root with one of the suffixes (case-insensitive), sorted for determinism."""
    wanted = tuple(s.lower() for s in suffixes)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(wanted):
                yield Path(dirpath) / name
