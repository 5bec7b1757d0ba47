"""Which registry model a URL means: model families, versions, `ga` else newest.

A served name is either a registry model name (`m3`: that model, its only version is its id) or a task
family (`detect`, `classify`: every ready model of that task with an ONNX export; its versions are the
models' registry ids). A family serves its `ga` model (the newest ga one), else its newest model, so
`visionloop model promote m3 --stage ga` switches what `/v1/models/detect/predict` runs. A registry name
wins over a family of the same name. Names are only ever looked up in the registry, never used as paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from visionloop.serve.errors import NotFound
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store.models import ExportInfo, ModelInfo

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TASKS = ("detect", "classify", "segment", "semantic")


@dataclass(frozen=True)
class Target:
    """What one request runs: the family/name it asked for, the model row and its ONNX export."""

    name: str
    model: ModelInfo
    export: ExportInfo

    @property
    def version(self) -> int:
        return self.model.id

    @property
    def key(self) -> str:
        return self.export.sha256


def load(store: Store, precision: str = "fp32") -> list[ModelInfo]:
    """Every servable model: ready, with an ONNX export of `precision`."""
    return [m for m in registry.list_all(store)  # OCR pipelines (gallery text-ocr) are not served yet
            if m.status == "ready" and m.task in TASKS and m.export("onnx", precision)]


class Catalog:
    def __init__(self, models: list[ModelInfo], precision: str = "fp32", only: list[str] | None = None) -> None:
        self.models = models
        self.precision = precision
        self.only = set(only or ())
        names = {m.name: m for m in models}
        self.by_name = {n: m for n, m in names.items() if not self.only or n in self.only}
        self._families: dict[str, list[ModelInfo]] = {}
        for m in models:
            if m.task not in names and (not self.only or m.task in self.only):
                self._families.setdefault(m.task, []).append(m)

    def families(self) -> dict[str, list[ModelInfo]]:
        return self._families

    def versions(self, name: str) -> list[ModelInfo]:
        _check(name)
        if name in self.by_name:
            return [self.by_name[name]]
        fam = self.families().get(name)
        if fam is None:
            known = sorted({*self.by_name, *self.families()})
            raise NotFound(f"no model {name!r} on this server",
                           hint=f"models: {', '.join(known)}" if known else "train one and export it to ONNX")
        return fam

    def resolve(self, name: str, version: str | None = None) -> Target:
        members = self.versions(name)
        if version is None:
            ga = [m for m in members if m.stage == "ga"]
            chosen = (ga or members)[-1]
        else:
            if not version.isdigit():
                raise NotFound(f"no version {version[:64]!r} of model {name!r}",
                               hint="versions are registry ids: see GET /v1/models/" + name)
            chosen = next((m for m in members if m.id == int(version)), None)
            if chosen is None:
                raise NotFound(f"no version {version} of model {name!r}",
                               hint=f"versions: {', '.join(str(m.id) for m in members)}")
        export = chosen.export("onnx", self.precision)
        assert export is not None
        return Target(name, chosen, export)

    def current(self) -> dict[str, str]:
        """Every name's current target (export sha), to see what a refresh changed."""
        names = [*self.by_name, *self.families()]
        return {n: self.resolve(n).key for n in names}


def _check(name: str) -> None:
    if not NAME.match(name):
        raise NotFound(f"no model {name[:64]!r}: a model name is letters, digits, '.', '_' or '-'",
                       hint="see GET /v1/models")
