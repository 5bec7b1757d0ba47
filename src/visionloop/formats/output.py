"""Output folders written atomically, and `--overwrite` that only ever replaces what visionloop wrote.

Every export, conversion and version export goes through `atomic_output()`:

- the output is built in a hidden sibling folder (`.<name>.partial-<id>`), so a failure (an error,
  Ctrl-C, SIGTERM, a full disk) removes it and leaves the user's folder as it was;
- the finished folder gets a marker file, `.visionloop-output` (JSON: tool, version, format), then
  takes the output's place by `rename` (a new or empty output) or by a swap (`--overwrite`): the old
  output is renamed aside, the new one renamed in, and only then the old one deleted;
- `--overwrite` replaces only a folder (or `.zip`) that holds the marker: never a project (a folder
  with `visionloop.yaml`), never the source or the project being written from, nor a folder that
  holds either, nor the current folder, the home folder or `/`.

The marker has no suffix, so no reader that lists `*.json`, `*.txt` or `*.csv` files ever sees it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from visionloop.core.errors import VisionLoopError
from visionloop.core.owner import owner_is_dead, owner_token

MARKER = ".visionloop-output"
PROJECT_FILE = "visionloop.yaml"

#: errors of the disk, not of visionloop: shown as one line naming the output
_DISK_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied"}


class OutputError(VisionLoopError):
    """The output path cannot be written or replaced."""


def marker_text(format: str) -> str:
    from visionloop import __version__ as version

    # no time stamp: the same conversion writes the same bytes (outputs are compared byte for byte)
    return json.dumps({"tool": "visionloop", "version": version, "format": format}, indent=1) + "\n"


def written_by_visionloop(path: Path) -> bool:
    """Whether `path` is a folder or .zip that holds visionloop's output marker."""
    try:
        if path.is_dir():
            return (path / MARKER).is_file()
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return MARKER in zf.namelist()
    except OSError:
        return False
    return False


def _occupied(path: Path) -> bool:
    if path.is_symlink() or path.is_file():
        return True
    if path.is_dir():
        with os.scandir(path) as it:
            return any(True for _ in it)
    return path.exists()


def _same_or_inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _local(p: str | Path) -> Path | None:
    text = str(p)
    if text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    return None if "://" in text else Path(text)


def refuse_replace(out: Path, *, protect: Iterable[str | Path] = ()) -> None:
    """Raise unless `out` is an output visionloop wrote that may be replaced (see the module docstring)."""
    hint = "pick a new output folder; --overwrite only replaces a folder visionloop wrote"
    if out.is_symlink():
        raise OutputError("is a symbolic link; refusing to replace it", path=out, hint=hint)
    real = out.resolve()
    specials = {Path("/"): "the root folder", Path.home().resolve(): "your home folder",
                Path.cwd().resolve(): "the current folder"}
    for special, what in specials.items():
        if real == special:
            raise OutputError(f"is {what}; refusing to replace it", path=out, hint=hint)
    for given in protect:
        local = _local(given)
        if local is None:
            continue
        p = local.resolve()
        if _same_or_inside(p, real):
            what = "is" if p == real else f"holds {p}, which is"
            raise OutputError(f"{what} an input of this command; refusing to replace it", path=out, hint=hint)
    if real.is_dir() and (real / PROJECT_FILE).exists():
        raise OutputError("is a visionloop project; refusing to replace it", path=out, hint=hint)
    if not written_by_visionloop(real):
        raise OutputError(f"exists and was not written by visionloop (no {MARKER} marker); refusing to replace it",
                          path=out, hint=hint)


def disk_error(e: OSError, out: Path) -> VisionLoopError | None:
    """A one-line error for a disk-level failure while writing `out`; None for other OSErrors."""
    what = _DISK_ERRNOS.get(e.errno or 0)
    if what is None:
        return None
    where = e.filename if isinstance(e.filename, str) else None
    return OutputError(f"cannot write the output: {what}" + (f" ({where})" if where else ""), path=out,
                       hint="nothing was written; free space or pick a writable folder")


@contextmanager
def atomic_output(out: str | Path, *, format: str, overwrite: bool = False, protect: Iterable[str | Path] = (),
                  zip: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder beside `out`; when the block succeeds it becomes `out` (with the marker).

    `zip`: `out` is a .zip file; the folder is zipped (marker included) and the file put in place.
    On any failure (exceptions, KeyboardInterrupt, SystemExit) the hidden folder is removed and `out` is
    untouched. `protect`: the inputs of the command (source, project, blob folder; remote URLs are
    skipped), never replaced.
    """
    out = Path(out)
    protect = list(protect)
    sweep_leftovers(out)  # first: a swap a kill cut short puts the old output back before anything is decided
    occupied = _occupied(out)
    if occupied:
        if not overwrite:
            raise OutputError("output exists and is not empty", path=out,
                              hint="pick a new folder, or pass --overwrite to replace an output visionloop wrote")
        refuse_replace(out, protect=protect)
    elif out.exists() and zip:
        raise OutputError("expected a .zip file, found a folder", path=out)
    token = owner_token()
    tmp = out.parent / f".{out.name}.partial-{token}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise (disk_error(e, out) or e) from None
    try:
        try:
            yield tmp
            (tmp / MARKER).write_text(marker_text(format), encoding="utf-8")
            if zip:
                built = tmp.with_name(tmp.name + ".zip")
                _zip_folder(tmp, built)
                shutil.rmtree(tmp)
            else:
                built = tmp
            _put_in_place(built, out, occupied=occupied, token=token)
        except OSError as e:
            err = disk_error(e, out)
            if err is None:
                raise
            raise err from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.with_name(tmp.name + ".zip").unlink(missing_ok=True)
        raise


def sweep_leftovers(out: Path) -> list[Path]:
    """Clear what a killed run (SIGKILL, power loss) left beside `out`: its partial output is removed; an old
    output it had moved aside to swap in a new one is put back if `out` is missing, else removed. Only
    leftovers of processes that are gone are touched; those of a run still going are left alone."""
    done: list[Path] = []
    if not out.parent.is_dir():
        return done
    for kind in ("partial", "replaced"):
        prefix = f".{out.name}.{kind}-"
        for p in sorted(out.parent.glob(prefix + "*")):
            token = p.name[len(prefix):].removesuffix(".zip")
            if owner_is_dead(token) is not True:
                continue
            if kind == "replaced" and not out.exists() and not out.is_symlink():
                os.rename(p, out)
            elif p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            done.append(p)
    return done


def _put_in_place(built: Path, out: Path, *, occupied: bool, token: str) -> None:
    if not occupied:
        if out.is_dir():  # an existing empty folder: keep it (its permissions, a shell's cwd), move the files in
            moved = []
            try:
                for entry in sorted(os.listdir(built)):
                    os.rename(built / entry, out / entry)
                    moved.append(entry)
            except BaseException:
                for entry in moved:
                    os.rename(out / entry, built / entry)
                raise
            built.rmdir()
        else:
            os.rename(built, out)
        return
    old = out.parent / f".{out.name}.replaced-{token}"
    os.rename(out, old)
    try:
        os.rename(built, out)
    except BaseException:
        os.rename(old, out)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


_STORED = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".zip")


def _zip_folder(folder: Path, zpath: Path) -> None:
    """Zip a folder: images stored as they are (already compressed), text deflated."""
    with zipfile.ZipFile(zpath, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                kind = zipfile.ZIP_STORED if path.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
                zf.write(path, path.relative_to(folder).as_posix(), compress_type=kind)
