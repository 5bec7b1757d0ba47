"""VLM JSONL for PaliGemma / Florence-2 fine-tuning: ``{"image", "prefix", "suffix"}`` per line.

References: PaliGemma's detection output
(https://ai.google.dev/gemma/docs/paligemma/prompt-system-instructions and big_vision's PaliGemma
README: "detect cat ; dog" is answered by ``<loc0123><loc0456><loc0789><loc1000> cat ; ...``,
four tokens y_min, x_min, y_max, x_max in 1024 bins), Florence-2's ``<OD>`` task (the processor's
``BoxQuantizer``: ``label<loc_x1><loc_y1><loc_x2><loc_y2>`` in 1000 bins, mode "floor"), and
Roboflow's JSONL export for them (https://roboflow.com/formats/paligemma-jsonl; one JSONL per split,
images beside)::

    {"image": "a.jpg", "prefix": "detect raccoon ; dog", "suffix": "<loc0100><loc0200><loc0800><loc0900> raccoon"}

Normalisation (what this module reads and writes)
    PaliGemma: token = round(coord / size * 1024), clipped to 0..1023; coord = token / 1024 * size
    (what Google's docs and supervision's ``from_paligemma`` decode with). A coordinate comes back
    within size / 2048 of where it was (size / 1024 at the far edge, where 1024 clips to 1023), and
    re-writing a read file gives the same tokens. Florence-2: token = floor(coord / size * 1000),
    clipped to 0..999; coord = (token + 0.5) / 1000 * size (the bin centre, as Florence-2's
    dequantiser), also stable under re-writing. Reading accepts both syntaxes (``<locNNNN>`` and
    ``<loc_N>``); writing is PaliGemma by default, ``syntax="florence2"`` for Florence-2.

Reading
    Tokens are relative to the image, whose size is read from its header (the file declares none).
    A line whose prefix is a captioning prompt (PaliGemma's ``caption <lang>`` / ``describe <lang>``,
    Florence-2's ``<CAPTION>``, ``<DETAILED_CAPTION>``, ``<MORE_DETAILED_CAPTION>``) is a `Caption` of its
    suffix, the prompt kept as attribute ``vlm_prompt`` unless it is ``caption en`` or ``<CAPTION>``. Lines
    whose prefix is neither that nor a detection prompt (``detect ...`` / ``<OD>``) -- VQA, OCR --
    are kept in ``ImageRef.metadata["vlm"]`` (prefix/suffix); an image with only those is MISSING. Classes
    named in a ``detect`` prefix are classes of the dataset even when no box has them; an image
    whose suffix has no box is NULL. ``<segNNN>`` tokens after a box (PaliGemma segmentation) need
    the model's VQ-VAE to decode and are ignored (logged). Several lines of one image are merged.

Layouts read: a ``.jsonl`` file; a folder holding ``annotations.jsonl`` / ``_annotations.jsonl`` or
``_annotations.<split>.jsonl`` files (split from the name); split folders each holding one.

Writing: ``out/[<split>/]annotations.jsonl`` with the images beside it. The prefix lists the classes
given to ``write`` (``classes=``), else the image's own classes; a caption is a line of its own (prefix its
``vlm_prompt``, else ``caption en`` / ``<CAPTION>`` by the syntax), and an image with captions and no object
has no detection line. A caption's other attributes and confidence have no place (dropped, counted).
Other geometries become their bounds
(keypoints their declared bbox); whole-image labels, box-less keypoints and class names containing
``;``, ``<`` or ``>`` are dropped (counted). A MISSING image is written with an empty suffix (NULL).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Caption
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import (
    SPLIT_WORDS,
    ImageRoot,
    Row,
    UniqueNames,
    as_box,
    grouped,
    split_folder,
)
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    image_size,
    open_text_bytes,
    place_image,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "vlm"
NAMES = ("annotations.jsonl", "_annotations.jsonl")
SYNTAXES = ("paligemma", "florence2")
PALI_BINS = 1024
FLORENCE_BINS = 1000
_PALI_BOX = re.compile(r"((?:<loc\d{4}>){4})((?:<seg\d{3}>)*)\s*([^;<>]*)")
_LOC4 = re.compile(r"<loc(\d{4})>")
_FLORENCE_BOX = re.compile(r"([^<>]*?)((?:<loc_\d+>){4})")
_LOC_N = re.compile(r"<loc_(\d+)>")


# --------------------------------------------------------------------------------- tokens


def pali_token(coord: float, size: int) -> int:
    return min(max(math.floor(coord / size * PALI_BINS + 0.5), 0), PALI_BINS - 1)


def pali_coord(token: int, size: int) -> float:
    return token * size / PALI_BINS


def florence_token(coord: float, size: int) -> int:
    return min(max(math.floor(coord / size * FLORENCE_BINS), 0), FLORENCE_BINS - 1)


def florence_coord(token: int, size: int) -> float:
    return (token + 0.5) * size / FLORENCE_BINS


def parse_suffix(suffix: str, width: int, height: int) -> list[tuple[str, Box]]:
    """(label, box in pixels) of every box in a PaliGemma or Florence-2 answer. ValueError when malformed."""
    out: list[tuple[str, Box]] = []
    if "<loc_" in suffix:
        for m in _FLORENCE_BOX.finditer(suffix):
            x0, y0, x1, y1 = (int(t) for t in _LOC_N.findall(m.group(2)))
            if max(x0, y0, x1, y1) >= FLORENCE_BINS:
                raise ValueError(f"Florence-2 location token above {FLORENCE_BINS - 1} in {m.group(2)!r}")
            label = m.group(1).strip()
            if not label:
                raise ValueError(f"a box without a label before {m.group(2)!r}")
            out.append((label, _box(florence_coord(x0, width), florence_coord(y0, height),
                                    florence_coord(x1, width), florence_coord(y1, height))))
        return out
    rest = suffix
    for m in _PALI_BOX.finditer(suffix):
        y0, x0, y1, x1 = (int(t) for t in _LOC4.findall(m.group(1)))
        if max(x0, y0, x1, y1) >= PALI_BINS:
            raise ValueError(f"PaliGemma location token above {PALI_BINS - 1} in {m.group(1)!r}")
        if m.group(2):
            log.info("<seg> tokens ignored (they need PaliGemma's VQ-VAE to decode)")
        label = m.group(3).strip()
        if not label:
            raise ValueError(f"a box without a label after {m.group(1)!r}")
        out.append((label, _box(pali_coord(x0, width), pali_coord(y0, height),
                                pali_coord(x1, width), pali_coord(y1, height))))
        rest = rest.replace(m.group(0), "", 1)
    if "<loc" in rest:
        raise ValueError(f"location tokens that do not form `<loc><loc><loc><loc> label`: {rest.strip()!r}")
    return out


def _box(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


#: the prompt a caption is written with when it names none, by syntax; a caption read with it keeps no attribute
CAPTION_PROMPT = {"paligemma": "caption en", "florence2": "<CAPTION>"}
PROMPT_KEY = "vlm_prompt"
_CAPTION_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")


def _is_caption_prompt(prefix: str) -> bool:
    """PaliGemma's `caption <lang>` / `describe <lang>`, Florence-2's caption tasks."""
    p = prefix.strip()
    if p in _CAPTION_TASKS:
        return True
    word, _, lang = p.partition(" ")
    return word.lower() in ("caption", "describe") and bool(lang.strip()) and " " not in lang.strip()


def _prompt_classes(prefix: str) -> list[str] | None:
    """Classes a detection prompt asks for ([] for Florence-2's <OD>), None for other prompts."""
    p = prefix.strip()
    if p.startswith("<OD>"):
        return []
    if p.lower().startswith("detect"):
        body = p[len("detect"):].strip()
        return [c.strip() for c in body.split(";") if c.strip()]
    return None


# ---------------------------------------------------------------------------------- layout


def _split_from_name(path: Path) -> str | None:
    parts = path.name.split(".")
    if len(parts) == 3 and parts[0] in ("_annotations", "annotations") and parts[1].lower() in SPLIT_WORDS:
        return parts[1]
    return None


def _files(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_file():
        return [(path, _split_from_name(path))] if path.suffix.lower() == ".jsonl" else []
    if not path.is_dir():
        return []
    for name in NAMES:
        if (path / name).is_file():
            return [(path / name, None)]
    found = [(f, _split_from_name(f)) for f in sorted(path.glob("*annotations.*.jsonl")) if _split_from_name(f)]
    if found:
        return found
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        for name in NAMES:
            if (sub / name).is_file():
                found.append((sub / name, sub.name))
                break
    return found


def _first_object(path: Path) -> dict[str, Any] | None:
    try:
        with open_text_bytes(path) as f:
            for line in f:
                if line.strip():
                    obj = orjson.loads(line)
                    return obj if isinstance(obj, dict) else None
    except (OSError, orjson.JSONDecodeError):
        return None
    return None


def detect(path: Path) -> Detection:
    """JSONL whose first line is an object with `image`, `prefix` and `suffix`."""
    path = Path(path)
    files = _files(path)
    if not files:
        return Detection.no("no annotations.jsonl / _annotations.<split>.jsonl")
    first = _first_object(files[0][0])
    if first is None or not {"image", "prefix", "suffix"} <= set(first):
        return Detection.no(f"{files[0][0].name}'s first line is not {{image, prefix, suffix}}")
    prefix = str(first.get("prefix", ""))
    detecting = _prompt_classes(prefix) is not None or _is_caption_prompt(prefix)
    return Detection(0.95 if detecting else 0.6, f"{files[0][0].name} holds {{image, prefix, suffix}} lines")


# ------------------------------------------------------------------------------------ read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _files(path)
    if not files:
        raise FormatError("no VLM JSONL here", path=path,
                          hint="expected annotations.jsonl, _annotations.<split>.jsonl or split folders holding one")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            yield from _read_file(f, split or file_split, classes)

    return Reader(classes, samples, source=path)


def _rows(path: Path) -> Iterator[Row]:
    with open_text_bytes(path) as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                raise FormatError(f"malformed JSON: {e}", path=path, where=f"line {n}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("image"), str) or not obj["image"]:
                raise FormatError("each line needs `image` (a file name), `prefix` and `suffix`", path=path,
                                  where=f"line {n}")
            prefix, suffix = obj.get("prefix", ""), obj.get("suffix", "")
            if not isinstance(prefix, str) or not isinstance(suffix, str):
                raise FormatError("`prefix` and `suffix` must be strings", path=path, where=f"line {n}")
            yield obj["image"], n, [prefix, suffix]


def _read_file(path: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    roots = ImageRoot([path.parent, path.parent / "images"])
    for name, rows in grouped(lambda: _rows(path)):
        file_name = name.replace("\\", "/")
        image = roots.resolve(file_name)
        size: tuple[int, int] | None = None
        anns: list[Annotation] = []
        other: list[dict[str, str]] = []
        detecting = False
        for line, (prefix, suffix) in rows:
            asked = _prompt_classes(prefix)
            if asked is None:
                if _is_caption_prompt(prefix):
                    attrs = {} if prefix in CAPTION_PROMPT.values() else {PROMPT_KEY: prefix}
                    anns.append(Annotation("", Caption(suffix), attributes=attrs))
                else:
                    other.append({"prefix": prefix, "suffix": suffix})
                continue
            detecting = True
            for c in asked:
                classes.add(c)
            if "<loc" not in suffix:
                continue
            if size is None:
                size = image_size(image)
            try:
                found = parse_suffix(suffix, *size)
            except ValueError as e:
                raise FormatError(str(e), path=path, where=f"line {line}") from None
            anns.extend(Annotation(classes.add(label).name, box) for label, box in found)
        meta: dict[str, Any] = {"vlm": other} if other else {}
        ref = ImageRef(file_name, width=size[0] if size else None, height=size[1] if size else None,
                       path=str(image), metadata=meta)
        anns.sort(key=lambda a: not a.is_caption)  # captions first, in line order, as the writer writes them
        state = LabelState.ANNOTATED if anns else LabelState.NULL if detecting else LabelState.MISSING
        yield Sample(ref, tuple(anns), split=split, state=state)


# ----------------------------------------------------------------------------------- write


def _suffix(objects: list[tuple[str, Box]], width: int, height: int, syntax: str) -> str:
    if syntax == "florence2":
        return "".join(
            label + "".join(f"<loc_{florence_token(v, s)}>" for v, s in
                            ((b.x0, width), (b.y0, height), (b.x1, width), (b.y1, height)))
            for label, b in objects)
    return " ; ".join(
        "".join(f"<loc{pali_token(v, s):04d}>" for v, s in ((b.y0, height), (b.x0, width), (b.y1, height), (b.x1, width)))
        + f" {label}" for label, b in objects)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
    syntax: str = "paligemma",
) -> WriteReport:
    """`out/[<split>/]annotations.jsonl`, images beside it; `syntax` "paligemma" (default) or "florence2"."""
    if syntax not in SYNTAXES:
        raise ValueError(f"syntax must be one of {SYNTAXES}, got {syntax!r}")
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    all_names = classes.names if classes is not None else None
    names = UniqueNames()
    files: dict[str | None, IO[bytes]] = {}
    try:
        for sample in samples:
            folder = out / split_folder(sample.split) if sample.split else out
            if sample.split not in files:
                target = folder / NAMES[0]
                if target.exists():
                    raise FormatError("the JSONL already exists; refusing to overwrite it", path=target)
                folder.mkdir(parents=True, exist_ok=True)
                files[sample.split] = open(target, "xb")
                report.files += 1
            name = names.claim(str(folder), safe_name(sample.image.file_name), report)
            if place_image(sample.image, folder / name, images):
                report.files += 1
            report.images += 1
            objects: list[tuple[str, Box]] = []
            captions: list[bytes] = []
            for ann in sample.annotations:
                if isinstance(ann.geometry, Caption):
                    captions.append(_caption_line(name, ann, syntax, report))
                    continue
                if any(c in ann.label for c in ";<>"):
                    report.drop("box", f"class name {ann.label!r} contains ';', '<' or '>', which the answer syntax uses")
                    continue
                box = as_box(ann, report, "VLM JSONL")
                if box is not None:
                    objects.append((ann.label, box))
            if objects:
                width, height = _size(sample)
                suffix = _suffix(objects, width, height, syntax)
            else:
                suffix = ""
                if sample.state is LabelState.MISSING:
                    report.converted["image missing labels -> null (an empty answer)"] += 1
            asked = all_names or list(dict.fromkeys(label for label, _ in objects))
            prefix = "<OD>" if syntax == "florence2" else ("detect " + " ; ".join(asked)).strip()
            files[sample.split].write(b"".join(captions))
            if objects or not captions:  # (an image with captions and no object: no detection line)
                files[sample.split].write(orjson.dumps({"image": name, "prefix": prefix, "suffix": suffix}) + b"\n")
        if not files:
            out.mkdir(parents=True, exist_ok=True)
            files[None] = open(out / NAMES[0], "xb")
            report.files += 1
    finally:
        for f in files.values():
            f.close()
    return report


def _caption_line(name: str, ann: Annotation, syntax: str, report: WriteReport) -> bytes:
    assert isinstance(ann.geometry, Caption)
    prompt = ann.attributes.get(PROMPT_KEY)
    if not isinstance(prompt, str) or not _is_caption_prompt(prompt):
        prompt = CAPTION_PROMPT[syntax]
    lost = [k for k in ann.attributes if k != PROMPT_KEY]
    if lost:
        report.drop("caption attribute", "a VLM JSONL line holds the prompt and the text only", len(lost))
    if ann.confidence is not None:
        report.drop("caption confidence", "a VLM JSONL line holds the prompt and the text only")
    report.annotations["caption"] += 1
    return orjson.dumps({"image": name, "prefix": prompt, "suffix": ann.geometry.text}) + b"\n"


def _size(sample: Sample) -> tuple[int, int]:
    ref = sample.image
    if ref.width is not None and ref.height is not None:
        return ref.width, ref.height
    if ref.path is None:
        raise FormatError("image size unknown and no file to read it from", path=ref.file_name)
    return image_size(ref.path)
