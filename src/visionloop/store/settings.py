"""Project settings kept in visionloop.yaml beside `database` and `blobs`: the privacy policy.

    p = privacy(store)                       # Privacy(blur_on_import=False, keep_originals=True, ...)
    p = set_privacy(store, blur_on_import=True, keep_originals=False)

    # visionloop.yaml
    privacy:
      blur_on_import: true     # every `visionloop import` (and API upload) finds faces/plates on the new images
      keep_originals: false    # blurred pixels replace the stored image; the unblurred blob is removed
      plates: my-plates        # a registry detector of licence plates, used at import (optional)
      vehicles: my-cars        # a registry vehicle detector whose plate bands are blurred (optional)
      vehicle_classes: [car, truck, bus]

A setting that is not there has its default; an unknown key or a value of the wrong type is an error naming the
file and the key, never ignored.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from visionloop.core.errors import ProjectError
from visionloop.store.project import CONFIG_NAME, Store

SECTION = "privacy"


@dataclass(frozen=True)
class Privacy:
    blur_on_import: bool = False
    keep_originals: bool = True
    plates: str | None = None
    vehicles: str | None = None
    vehicle_classes: list[str] = field(default_factory=list)  # empty: privacy.VEHICLE_CLASSES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_TYPES: dict[str, tuple[type, ...]] = {"blur_on_import": (bool,), "keep_originals": (bool,),
                                       "plates": (str, type(None)), "vehicles": (str, type(None)),
                                       "vehicle_classes": (list,)}


def _config(store: Store) -> tuple[Path, dict[str, Any]]:
    path = Path(store.root) / CONFIG_NAME
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ProjectError(f"cannot read the project settings ({e})", path=path) from None
    if not isinstance(doc, dict):
        raise ProjectError("the project settings are not a mapping", path=path)
    return path, doc


def _parse(path: Path, raw: Any) -> Privacy:
    if raw is None:
        return Privacy()
    if not isinstance(raw, dict):
        raise ProjectError(f"`{SECTION}` must be a mapping of settings", path=path,
                           hint=f"e.g. {SECTION}: {{blur_on_import: true, keep_originals: false}}")
    for key, value in raw.items():
        if key not in _TYPES:
            raise ProjectError(f"unknown setting {SECTION}.{key}", path=path,
                               hint=f"{SECTION} settings: {', '.join(_TYPES)}")
        if not isinstance(value, _TYPES[key]) or (isinstance(value, list)
                                                  and not all(isinstance(v, str) for v in value)):
            want = {"blur_on_import": "true or false", "keep_originals": "true or false",
                    "plates": "a model name", "vehicles": "a model name",
                    "vehicle_classes": "a list of class names"}[key]
            raise ProjectError(f"{SECTION}.{key} is {value!r}, not {want}", path=path)
    return Privacy(**raw)


def privacy(store: Store) -> Privacy:
    """The project's privacy policy (defaults where visionloop.yaml says nothing)."""
    path, doc = _config(store)
    return _parse(path, doc.get(SECTION))


def set_privacy(store: Store, **changes: Any) -> Privacy:
    """Change some privacy settings (None leaves one as it is, "" clears a model) and write visionloop.yaml atomically; the new policy.
    Only the settings that differ from their defaults are written."""
    path, doc = _config(store)
    current = _parse(path, doc.get(SECTION))
    unknown = set(changes) - {f.name for f in fields(Privacy)}
    if unknown:
        raise ProjectError(f"unknown setting {SECTION}.{sorted(unknown)[0]}", path=path)
    new = replace(current, **{k: v for k, v in changes.items() if v is not None})
    new = replace(new, plates=new.plates or None, vehicles=new.vehicles or None)  # "" clears a model
    _parse(path, asdict(new))  # the same checks as reading it back
    default = Privacy()
    doc[SECTION] = {k: v for k, v in asdict(new).items() if v != getattr(default, k)}
    if not doc[SECTION]:
        del doc[SECTION]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)
    return new
