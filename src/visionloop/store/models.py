"""The model registry: the one writer of `model` and `model_export` rows, and their lineage.

    from visionloop.store import models
    info = models.create(store, task="detect", arch="fcos_lite0", version=3, ...)   # status training
    models.finish(store, info.id, metrics={...}, weights=b"...")                      # status ready
    models.add_export(store, info.id, format="onnx", precision="fp32", data=b"...", parity={...})
    models.promote(store, "m1")                                                       # preview → beta

A model's lineage: `model ← version` (with the split and hyper-parameters it was trained with);
each export: `export ← model`. Weights and exports are content-addressed blobs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

import visionloop
from visionloop.core.errors import NotFoundError, VisionLoopError
from visionloop.store import lineage
from visionloop.store.lineage import Kind, Ref
from visionloop.store.lookup import find_id
from visionloop.store.project import Store
from visionloop.store.schema import ModelExportRow, ModelRow, VersionRow, utcnow

STAGES = ("preview", "beta", "ga")
CHECKPOINTS = "runs"  # project-relative folder of training checkpoints


@dataclass
class ExportInfo:
    id: int
    model_id: int
    format: str
    precision: str
    sha256: str
    size_bytes: int
    parity: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @classmethod
    def from_row(cls, r: ModelExportRow) -> ExportInfo:
        return cls(r.id, r.model_id, r.format, r.precision, r.sha256, r.size_bytes, dict(r.parity or {}),
                   dict(r.metrics or {}), dict(r.meta or {}), _iso(r.created_at))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model_id": self.model_id, "format": self.format, "precision": self.precision,
                "sha256": self.sha256, "size_bytes": self.size_bytes, "parity": self.parity,
                "metrics": self.metrics, "meta": self.meta, "created_at": self.created_at}


@dataclass
class ModelInfo:
    id: int
    name: str
    task: str
    arch: str
    weights_init: str
    status: str
    stage: str
    version_id: int | None
    version: str
    classes: list[str]
    input_size: list[int]
    preprocessing: dict[str, Any]
    hyper: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    checkpoint: str | None
    weights_sha256: str | None
    code_version: str
    created_at: str
    finished_at: str | None
    exports: list[ExportInfo] = field(default_factory=list)

    @classmethod
    def from_row(cls, r: ModelRow, exports: list[ModelExportRow] | None = None) -> ModelInfo:
        return cls(r.id, r.name, r.task, r.arch, r.weights_init, r.status, r.stage, r.version_id, r.version_name,
                   list(r.classes or []), list(r.input_size or []), dict(r.preprocessing or {}),
                   dict(r.hyper or {}), dict(r.metrics or {}), list(r.history or []), r.checkpoint,
                   r.weights_sha256, r.code_version, _iso(r.created_at),
                   _iso(r.finished_at) if r.finished_at else None,
                   [ExportInfo.from_row(e) for e in exports or []])

    def export(self, format: str = "onnx", precision: str = "fp32") -> ExportInfo | None:
        return next((e for e in self.exports if e.format == format and e.precision == precision), None)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "task": self.task, "arch": self.arch,
                "weights_init": self.weights_init, "status": self.status, "stage": self.stage,
                "version": self.version, "version_id": self.version_id, "classes": self.classes,
                "input_size": self.input_size, "preprocessing": self.preprocessing, "hyper": self.hyper,
                "metrics": self.metrics, "history": self.history, "checkpoint": self.checkpoint,
                "weights_sha256": self.weights_sha256, "code_version": self.code_version,
                "created_at": self.created_at, "finished_at": self.finished_at,
                "exports": [e.to_json() for e in self.exports]}


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t else ""


def find_model_id(s: Session, model: str | int) -> int:
    """A model's id from its name, its id, or `latest` (the newest ready one)."""
    return find_id(s, ModelRow, model, what="model", hint="train one with `visionloop train`")


def _info(s: Session, mid: int) -> ModelInfo:
    row = s.get(ModelRow, mid)
    assert row is not None
    exports = s.scalars(select(ModelExportRow).where(ModelExportRow.model_id == mid)
                        .order_by(ModelExportRow.id)).all()
    return ModelInfo.from_row(row, list(exports))


def get(store: Store, model: str | int) -> ModelInfo:
    with store.session() as s:
        return _info(s, find_model_id(s, model))


def list_all(store: Store) -> list[ModelInfo]:
    with store.session() as s:
        ids = s.scalars(select(ModelRow.id).order_by(ModelRow.id)).all()
        return [_info(s, i) for i in ids]


def create(store: Store, *, task: str, arch: str, weights_init: str, version_id: int, classes: list[str],
           input_size: list[int], preprocessing: dict[str, Any], hyper: dict[str, Any],
           name: str | None = None) -> ModelInfo:
    """A new model row (status training, stage preview) and its `model ← version` edge."""
    with store.session() as s, s.begin():
        vname = s.scalar(select(VersionRow.name).where(VersionRow.id == version_id))
        if vname is None:
            raise NotFoundError(f"no version with id {version_id} in this project")
        if name is None:
            last = s.scalar(select(ModelRow.id).order_by(ModelRow.id.desc())) or 0
            name = f"m{last + 1}"
            while s.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
                last += 1
                name = f"m{last + 1}"
        elif s.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
            raise VisionLoopError(f"a model named {name!r} already exists", hint="pick another --name")
        row = ModelRow(name=name, task=task, arch=arch, weights_init=weights_init, status="training",
                       stage="preview", version_id=version_id, version_name=vname, classes=list(classes),
                       input_size=list(input_size), preprocessing=preprocessing, hyper=hyper, metrics={},
                       history=[], checkpoint=f"{CHECKPOINTS}/{name}", code_version=visionloop.__version__)
        s.add(row)
        s.flush()
        version = Ref(Kind.VERSION, version_id)
        lineage.record(s, Ref(Kind.MODEL, row.id), [version],
                       params={version: {"split": hyper.get("split", "train"), "hyper": hyper}})
        return _info(s, row.id)


def register(store: Store, *, name: str, task: str, arch: str, source: Ref, classes: list[str],
             input_size: list[int], preprocessing: dict[str, Any], hyper: dict[str, Any], metrics: dict[str, Any],
             onnx: bytes, stage: str = "ga", exports: dict[str, bytes] | None = None) -> ModelInfo:
    """A ready model that was not trained here (a gallery model, a user's ONNX): its row (no dataset version),
    its ONNX export (plus any `exports` by format name, e.g. the recogniser of an OCR pipeline) and the
    `model ← source` edge (the package and version, or the file, its weights came from)."""
    if stage not in STAGES:
        raise VisionLoopError(f"unknown stage {stage!r}", hint=f"stages: {', '.join(STAGES)}")
    blobs = {"onnx": store.blobs.put(onnx), **{k: store.blobs.put(v) for k, v in (exports or {}).items()}}
    sizes = {"onnx": len(onnx), **{k: len(v) for k, v in (exports or {}).items()}}
    with store.session() as s, s.begin():
        if s.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
            raise VisionLoopError(f"a model named {name!r} already exists in this project",
                                  hint="pick another --name, or `visionloop model delete " + name + "` first")
        row = ModelRow(name=name, task=task, arch=arch, weights_init=f"{source.kind}:{source.id}", status="ready",
                       stage=stage, version_id=None, version_name="", classes=list(classes),
                       input_size=list(input_size), preprocessing=preprocessing, hyper=hyper, metrics=metrics,
                       history=[], checkpoint=None, weights_sha256=None, code_version=visionloop.__version__,
                       finished_at=utcnow())
        s.add(row)
        s.flush()
        me = Ref(Kind.MODEL, row.id)
        lineage.record(s, me, [source], params={source: {"task": task, "arch": arch}})
        for fmt, sha in blobs.items():
            e = ModelExportRow(model_id=row.id, format=fmt, precision="fp32", sha256=sha, size_bytes=sizes[fmt],
                               parity={}, metrics={}, meta={}, code_version=visionloop.__version__)
            s.add(e)
            s.flush()
            lineage.record(s, Ref(Kind.EXPORT, e.id), [me], params={me: {"format": fmt, "precision": "fp32"}})
        return _info(s, row.id)


def update(store: Store, model: str | int, **fields: Any) -> ModelInfo:
    """Set some of: history, metrics, hyper, status (progress during training)."""
    allowed = {"history", "metrics", "hyper", "status"}
    if unknown := set(fields) - allowed:
        raise ValueError(f"cannot update {sorted(unknown)}")
    with store.session() as s, s.begin():
        mid = find_model_id(s, model)
        row = s.get(ModelRow, mid)
        for k, v in fields.items():
            setattr(row, k, v)
        return _info(s, mid)


def finish(store: Store, model: str | int, *, weights: bytes, metrics: dict[str, Any],
           history: list[dict[str, Any]] | None = None) -> ModelInfo:
    """The final weights (a blob) and metrics; status ready."""
    sha = store.blobs.put(weights)
    with store.session() as s, s.begin():
        mid = find_model_id(s, model)
        row = s.get(ModelRow, mid)
        assert row is not None
        row.weights_sha256 = sha
        row.metrics = metrics
        if history is not None:
            row.history = history
        row.status = "ready"
        row.finished_at = utcnow()
        return _info(s, mid)


def promote(store: Store, model: str | int, stage: str | None = None) -> ModelInfo:
    """Move a ready model one stage on (preview → beta → ga), or to `stage`."""
    with store.session() as s, s.begin():
        mid = find_model_id(s, model)
        row = s.get(ModelRow, mid)
        assert row is not None
        if row.status != "ready":
            raise VisionLoopError(f"model {row.name} is {row.status}, not ready", hint="finish its training first")
        if stage is None:
            i = STAGES.index(row.stage)
            if i + 1 >= len(STAGES):
                raise VisionLoopError(f"model {row.name} is already {row.stage}", hint="the last stage is ga")
            stage = STAGES[i + 1]
        if stage not in STAGES:
            raise VisionLoopError(f"unknown stage {stage!r}", hint=f"stages: {', '.join(STAGES)}")
        row.stage = stage
        return _info(s, mid)


def delete_model(store: Store, model: str | int) -> ModelInfo:
    """Remove the model, its exports, their lineage and its checkpoints (blobs stay: content-addressed)."""
    with store.session() as s, s.begin():
        mid = find_model_id(s, model)
        info = _info(s, mid)
        for e in info.exports:
            lineage.forget(s, Ref(Kind.EXPORT, e.id))
        lineage.forget(s, Ref(Kind.MODEL, mid))
        s.execute(delete(ModelExportRow).where(ModelExportRow.model_id == mid))
        s.execute(delete(ModelRow).where(ModelRow.id == mid))
    if info.checkpoint:
        folder = (Path(store.root) / info.checkpoint).resolve()
        if folder.is_dir() and Path(store.root).resolve() in folder.parents:
            shutil.rmtree(folder)
    return info


def checkpoint_dir(store: Store, info: ModelInfo) -> Path:
    folder = Path(store.root) / (info.checkpoint or f"{CHECKPOINTS}/{info.name}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def add_export(store: Store, model: str | int, *, format: str, precision: str, data: bytes,
               parity: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
               meta: dict[str, Any] | None = None) -> ExportInfo:
    """Store an exported file (a blob) and its row (replacing an earlier export to the same target)."""
    sha = store.blobs.put(data)
    with store.session() as s, s.begin():
        mid = find_model_id(s, model)
        old = s.scalar(select(ModelExportRow).where(ModelExportRow.model_id == mid, ModelExportRow.format == format,
                                                    ModelExportRow.precision == precision))
        if old is not None:
            lineage.forget(s, Ref(Kind.EXPORT, old.id))
            s.delete(old)
            s.flush()
        row = ModelExportRow(model_id=mid, format=format, precision=precision, sha256=sha, size_bytes=len(data),
                             parity=parity or {}, metrics=metrics or {}, meta=meta or {},
                             code_version=visionloop.__version__)
        s.add(row)
        s.flush()
        m = Ref(Kind.MODEL, mid)
        lineage.record(s, Ref(Kind.EXPORT, row.id), [m], params={m: {"format": format, "precision": precision}})
        return ExportInfo.from_row(row)


def blob_file(store: Store, sha256: str) -> str:
    """A local file path holding the blob (a cached copy when the blobs are remote)."""
    local = store.blobs.local_path(sha256)
    if local:
        return local
    cache = Path(store.root) / ".cache" / "blobs"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / sha256
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(store.blobs.get(sha256))
        tmp.replace(path)
    return str(path)
