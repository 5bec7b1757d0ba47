"""Which registry model a URL means: model families, versions, `ga` else newest.

A served name is either a registry model name (`m3`: that model, its only version is its id) or a task
family (`detect`, `classify`: every ready model of that task with an ONNX export; its versions are the
models' registry ids). A family serves its `ga` model (the newest ga one), else its newest model, so
`visionloop model promote m3 --stage ga` switches what `/v1/models/detect/predict` runs. A registry name
wins over a family of the same name. Names are only ever looked up in the registry, never used as paths.

Two kinds of servable model: a *graph* (detect, classify, segment, semantic: one ONNX file, its inference
batched across requests by the engine) and a *pipeline* (ocr: several ONNX files with code between them,
whole images in and out, see `engine.PipelineRunner`). A pipeline's parts are the model's exports named in
`PIPELINES`; it is served only when every required part is there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from visionloop.serve.errors import NotFound
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store.models import ExportInfo, ModelInfo

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
GRAPHS = ("detect", "classify", "segment", "semantic")
#: pipeline task -> (required export formats besides "onnx", optional ones)
PIPELINES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {"ocr": (("onnx-rec",), ("onnx-cls",))}
TASKS = (*GRAPHS, *PIPELINES)


def kind(task: str) -> str:
    """"pipeline" for a task served by `engine.PipelineRunner`, else "graph" (the batched single session)."""
    return "pipeline" if task in PIPELINES else "graph"


def parts(model: ModelInfo, precision: str = "fp32") -> dict[str, ExportInfo] | None:
    """The export(s) serving `model` by format ("onnx", plus a pipeline's "onnx-rec", ...); None: not servable."""
    main = model.export("onnx", precision)
    if main is None:
        return None
    out = {"onnx": main}
    if model.task in PIPELINES:
        required, optional = PIPELINES[model.task]
        for fmt in (*required, *optional):
            e = model.export(fmt, "fp32")  # a pipeline's other parts are only ever fp32
            if e is None and fmt in required:
                return None
            if e is not None:
                out[fmt] = e
    return out


def key_of(files: dict[str, ExportInfo]) -> str:
    """What identifies a loaded model: its ONNX file's sha256; for a pipeline, a hash over all its parts."""
    if len(files) == 1:
        return files["onnx"].sha256
    return hashlib.sha256(" ".join(f"{k}={e.sha256}" for k, e in sorted(files.items())).encode()).hexdigest()


@dataclass(frozen=True)
class Target:
    """What one request runs: the family/name it asked for, the model row and its ONNX export (a pipeline's
    first file) plus, for a pipeline, its other files."""

    name: str
    model: ModelInfo
    export: ExportInfo
    files: dict[str, ExportInfo] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return kind(self.model.task)

    @property
    def version(self) -> int:
        return self.model.id

    @property
    def key(self) -> str:
        return key_of(self.files or {"onnx": self.export})


def load(store: Store, precision: str = "fp32") -> list[ModelInfo]:
    """Every servable model: ready, with an ONNX export of `precision` (and a pipeline's other parts)."""
    return [m for m in registry.list_all(store)
            if m.status == "ready" and m.task in TASKS and parts(m, precision) is not None]


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
        files = parts(chosen, self.precision)
        assert files is not None
        return Target(name, chosen, files["onnx"], files)

    def current(self) -> dict[str, str]:
        """Every name's current target (export sha), to see what a refresh changed."""
        names = [*self.by_name, *self.families()]
        return {n: self.resolve(n).key for n in names}


def _check(name: str) -> None:
    if not NAME.match(name):
        raise NotFound(f"no model {name[:64]!r}: a model name is letters, digits, '.', '_' or '-'",
                       hint="see GET /v1/models")
