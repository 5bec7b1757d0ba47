"""Private helpers shared by the JSON-based format modules datumaro, bdd100k, sa1b, coco_panoptic
and coco_captions: streamed reading with located syntax errors, unique output names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import ijson
import orjson

from visionloop.core.errors import FormatError
from visionloop.formats.base import open_text_bytes, strip_bom


def json_error(path: Path, e: Exception) -> FormatError:
    """A FormatError with the line and column of a JSON syntax error (re-parses, on the error path only)."""
    try:
        json.loads(path.read_bytes())
    except json.JSONDecodeError as je:
        return FormatError(f"malformed JSON: {je.msg}", path=path, where=f"line {je.lineno}, column {je.colno}")
    except UnicodeDecodeError as ue:
        return FormatError(f"not UTF-8 text ({ue.reason})", path=path, where=f"byte {ue.start}")
    return FormatError(f"malformed JSON: {e}", path=path)


def iter_items(path: Path, prefix: str) -> Iterator[Any]:
    """ijson items under `prefix` ("items.item", "" for the root), floats as float."""
    try:
        with open_text_bytes(path) as f:
            yield from ijson.items(f, prefix, use_float=True)
    except ijson.JSONError as e:
        raise json_error(path, e) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None


def first_item(path: Path, prefix: str) -> Any | None:
    """The first value at `prefix`, or None when the file has none (stops reading once found)."""
    for value in iter_items(path, prefix):
        return value
    return None


def load_small(path: Path) -> Any:
    """A whole (small, per-image) JSON file."""
    try:
        return orjson.loads(strip_bom(path.read_bytes()))
    except orjson.JSONDecodeError:
        raise json_error(path, ValueError("not JSON")) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None


def head(path: Path, n: int = 4096) -> bytes:
    try:
        with open_text_bytes(path) as f:
            return f.read(n)
    except OSError:
        return b""


def jsonable(d: Any) -> dict[str, Any]:
    """The JSON-serialisable part of a mapping (values orjson cannot write are left out)."""
    out: dict[str, Any] = {}
    for k, v in dict(d).items():
        try:
            orjson.dumps(v)
        except TypeError:
            continue
        out[str(k)] = v
    return out


class UniqueNames:
    """Hands out relative POSIX names, adding _1, _2 ... before the extension on collision."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        if name not in self._taken:
            self._taken.add(name)
            return name
        p = PurePosixPath(name)
        k = 1
        while True:
            candidate = str(p.with_name(f"{p.stem}_{k}{p.suffix}"))
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate
            k += 1


def prefixed_json_files(path: Path, prefix: str) -> list[Path]:
    """`<prefix>*.json` files: the path itself when it is a JSON file, else in `annotations/` or the folder."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".json" else []
    for folder in (path / "annotations", path):
        if folder.is_dir():
            found = sorted(p for p in folder.glob(f"{prefix}*.json") if p.is_file())
            if found:
                return found
    return []
