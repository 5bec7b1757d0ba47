"""The labelling round trip through a running Label Studio server, and a CVAT task of the same selection.

    sent = send_to_label_studio(store, url, key, tag="select-7", model="det")   # tasks with pre-labels
    pulled = pull_from_label_studio(store, url, key, sent.ls_project)          # one import batch, undoable

Send. The images of a tag (or a list of image ids) become Label Studio tasks of one project, created with a
labelling config made from the project's classes (RectangleLabels for boxes, PolygonLabels, Choices for
whole-image labels, per-region attributes), or reused (by id, or by title) when its config already has the
controls and classes the tasks use (visionloop never changes a project's config: an error says what is missing). Images are UPLOADED to the server
(`POST /api/projects/{id}/import?commit_to_project=false`, the way Label Studio's own import dialog uploads
files), so a server on loopback works with no storage set up: local-files serving would need
LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED and a document root on the server, and cloud storage a bucket.
Each task's data names its image in the store: ``vl_image`` (the image id), ``vl_sha256`` (the bytes'
SHA-256), ``vl_file_name`` and ``vl_split``; an image whose task is already in the project is not sent
twice. Pre-labels are task `predictions` (written by `formats.labelstudio`, so the results are those of the
Label Studio export format): the model's detections with their scores and ``model_version`` =
``<model name>#<model id>``, and the image's current labels (not a model's) as a second prediction with
``model_version`` = ``visionloop labels``, so the labeller starts from whichever is closer.

Pull. The project's export (`GET /api/projects/{id}/export?exportType=JSON`) is saved in the project folder
(`labelstudio/`), and every task with a submitted annotation (the latest one updated, when there are several;
cancelled ones are skipped) replaces its image's labels through the ordinary import (`ingest.import_samples`, passed in by the caller: `loop` and `ingest` are stages of one layer):
one batch, undone exactly by `visionloop undo`. The image is found by ``vl_image`` and must have the bytes
``vl_sha256`` names (else by those bytes, when exactly one image has them): images are never added. A region
equal to one of the image's labels (same class, same geometry within 1e-6 px) keeps that label as it is
(source, attributes); the others are new, with ``source=human`` and attributes ``labelled_by`` (the
annotator's e-mail) and ``labelled_at`` (the annotation's last update, UTC ISO 8601). The report counts the
labels added, deleted and modified (a new region paired with a removed label of the image it overlaps most,
IoU ≥ 0.3: moved or re-classed) and the annotators; the batch's summary keeps them.

The HTTP API (Label Studio 1.23) is spoken with httpx, one call per endpoint; the API key is a legacy token
(``Authorization: Token``) or a personal access token (a JWT refresh token, exchanged at ``/api/token/refresh``
for a Bearer access token), told apart as label-studio-sdk's ``TokensClientExt`` does.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from visionloop import formats
from visionloop.core.classes import ClassMap
from visionloop.core.errors import VisionLoopError
from visionloop.core.geometry import Box, Caption, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, LabelState, Sample, Source
from visionloop.formats import labelstudio as ls_format
from visionloop.formats.base import ImageMode
from visionloop.store import batches as batch_store
from visionloop.store import models as registry
from visionloop.store import tags as tag_store
from visionloop.store.project import Store
from visionloop.versions import redact

log = logging.getLogger(__name__)

LABELS_VERSION = "visionloop labels"  # model_version of the prediction that holds an image's current labels
STORED_VERSION = "visionloop pre-labels"  # model_version of stored source=model labels that name no model
DATA_KEYS = ("vl_image", "vl_sha256", "vl_file_name", "vl_split")
MATCH_PX = 1e-6  # a region this close to a stored label (every coordinate) is that label, unchanged
PAIR_IOU = 0.3  # a new region and a removed label overlapping this much count as one label modified
PULL_FOLDER = "labelstudio"

#: `ingest.import_samples(store, reader, root, format=...)`: returns a report with `batch_id`
Importer = Callable[..., Any]


# ---------------------------------------------------------------- HTTP


class LabelStudioError(VisionLoopError):
    """The Label Studio server refused a call or cannot be reached."""


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class LabelStudio:
    """A small client for the Label Studio HTTP API: the calls the round trip needs, errors as one line."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise LabelStudioError(f"the Label Studio URL {url!r} is not http(s)",
                                   hint="give --url like http://127.0.0.1:8080")
        if not api_key:
            raise LabelStudioError("no Label Studio API key",
                                   hint="pass --api-key or set LABEL_STUDIO_API_KEY (Account & Settings → "
                                        "Personal Access Token, or the legacy token)")
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        claims = _jwt_claims(api_key)
        if claims is not None and claims.get("token_type") == "refresh":
            access = self._call("POST", "/api/token/refresh", json={"refresh": api_key})
            self._client.headers["Authorization"] = f"Bearer {access['access']}"
        else:
            self._client.headers["Authorization"] = f"{'Bearer' if claims else 'Token'} {api_key}"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LabelStudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} ({type(e).__name__}: {e})",
                                   hint="is the server running? (`label-studio start`)") from None
        if r.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio refused the API key ({r.status_code} on {method} {path})",
                                   hint="use the token of Account & Settings (legacy tokens must be enabled in "
                                        "the organization) or a personal access token")
        if r.status_code >= 400:
            body = r.text.strip().replace("\n", " ")
            raise LabelStudioError(f"Label Studio answered {r.status_code} to {method} {path}: {body[:300]}")
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            raise LabelStudioError(f"Label Studio answered {method} {path} with something that is not JSON "
                                   f"({r.headers.get('content-type', '?')})",
                                   hint=f"is {self.url} a Label Studio server?") from None

    # -- projects
    def projects(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self._call("GET", "/api/projects", params={"page": page, "page_size": 100})
            rows = data["results"] if isinstance(data, dict) else data
            out += rows
            if not isinstance(data, dict) or not data.get("next"):
                return out
            page += 1

    def project(self, project_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/projects/{int(project_id)}"))

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        return dict(self._call("POST", "/api/projects", json={"title": title, "label_config": label_config}))

    # -- tasks
    def upload(self, project_id: int, name: str, data: bytes) -> str:
        """Upload one file without making a task of it: its URL (``/data/upload/...``) for a task's data."""
        r = self._call("POST", f"/api/projects/{int(project_id)}/import", params={"commit_to_project": "false"},
                       files={"file": (name, data, "application/octet-stream")})
        ids = r.get("file_upload_ids") or []
        if len(ids) != 1:
            raise LabelStudioError(f"Label Studio took the upload of {name} but returned {len(ids)} file ids")
        files = self._call("GET", f"/api/projects/{int(project_id)}/file-uploads", params={"ids": json.dumps(ids)})
        if len(files) != 1 or not files[0].get("file"):
            raise LabelStudioError(f"Label Studio lists no file for the upload of {name}")
        return "/data/" + str(files[0]["file"]).lstrip("/")

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        r = self._call("POST", f"/api/projects/{int(project_id)}/import", params={"return_task_ids": "true"},
                       json=tasks)
        ids = [int(i) for i in r.get("task_ids") or []]
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio made {len(ids)} tasks of the {len(tasks)} sent")
        return ids

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (Label Studio JSON export)."""
        data = self._call("GET", f"/api/projects/{int(project_id)}/export",
                          params={"exportType": "JSON", "download_all_tasks": "true"})
        if not isinstance(data, list):
            raise LabelStudioError(f"Label Studio's export of project {project_id} is not a list of tasks")
        return data

    def users(self) -> dict[int, str]:
        """User id → e-mail, for the annotations' ``completed_by``."""
        return {int(u["id"]): str(u.get("email") or u.get("username") or u["id"])
                for u in self._call("GET", "/api/users")}


# ---------------------------------------------------------------- the selection as samples with pre-labels


def selected_images(store: Store, *, tag: str | None = None, image_ids: Sequence[int] | None = None
                    ) -> list[tag_store.ImageInfo]:
    """The images of `tag`, or those ids, in id order; an error when there are none or an id is unknown."""
    rows = tag_store.images(store)
    if image_ids is not None:
        by_id = {r.id: r for r in rows}
        missing = [i for i in image_ids if i not in by_id]
        if missing:
            raise VisionLoopError(f"no image {missing[0]} in this project", hint="`visionloop select` prints ids")
        picked = [by_id[i] for i in sorted(set(image_ids))]
    elif tag is not None:
        picked = [r for r in rows if tag in r.tags]
        if not picked:
            raise VisionLoopError(f"no image has the tag {tag!r}", hint="tag a selection with `visionloop select`")
    else:
        raise VisionLoopError("nothing to send", hint="give --tag (a selection) or image ids")
    return picked


def _samples_of(store: Store, picked: Sequence[tag_store.ImageInfo]) -> Iterator[tuple[int, Sample]]:
    keys: dict[tuple[str | None, str, str | None], int] = {(p.sha256, p.file_name, p.split): p.id for p in picked}
    for s in store.samples():
        iid = keys.get((s.image.sha256, s.image.file_name, s.split))
        if iid is not None:
            yield iid, s


@dataclass
class _Prelabelled:
    image_id: int
    sample: Sample  # the stored image with its pre-labels: the model's, then its current labels (source=model)
    predictions: int  # the model's boxes / classes
    labels: int  # current labels sent as a prediction


def _prelabel(store: Store, picked: Sequence[tag_store.ImageInfo], model: str | int | None, conf: float,
              *, current_labels: bool = True) -> tuple[list[_Prelabelled], str | None]:
    predictor = None
    model_version = None
    if model is not None:
        from visionloop.infer import Predictor
        from visionloop.infer.output import to_samples

        info = registry.get(store, model)
        e = info.export("onnx", "fp32")
        if e is None:
            raise VisionLoopError(f"model {info.name} has no ONNX export",
                                  hint=f"run `visionloop model export {info.name}`")
        predictor = Predictor(registry.blob_file(store, e.sha256))
        model_version = f"{info.name}#{info.id}"
    out = []
    for iid, s in _samples_of(store, picked):
        anns: list[Annotation] = []
        if predictor is not None:
            path = registry.blob_file(store, s.image.sha256 or "")
            pred = predictor.predict_file(path, conf=conf)
            (ps,) = to_samples([pred], [path], Path(path).parent)
            anns += [replace(a, attributes={**a.attributes, "model_version": model_version})
                     for a in ps.annotations]
        if predictor is None and current_labels:  # stored pre-labels (e.g. the logged model's) go as they are
            anns += [a if "model_version" in a.attributes else
                     replace(a, attributes={**a.attributes, "model_version": STORED_VERSION})
                     for a in s.annotations if a.source is Source.MODEL]
        n_model = len(anns)
        if current_labels:
            anns += [replace(a, source=Source.MODEL, confidence=None,
                             attributes={**a.attributes, "model_version": LABELS_VERSION})
                     for a in s.annotations if a.source is not Source.MODEL]
        state = LabelState.ANNOTATED if anns else LabelState.MISSING  # the writer makes no empty annotation
        out.append(_Prelabelled(iid, replace(s, annotations=tuple(anns), state=state),
                                n_model, len(anns) - n_model))
    return out, model_version


# ---------------------------------------------------------------- send


@dataclass
class SendReport:
    tool: str
    target: str  # the server URL, or the folder written
    ls_project: int | None
    project_title: str | None
    project_created: bool
    model: str | None
    images: int
    tasks_created: int
    tasks_already_there: int
    predictions: int  # the model's regions sent
    labels: int  # current labels sent (a prediction per image)
    task_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "target": self.target, "ls_project": self.ls_project,
                "project_title": self.project_title, "project_created": self.project_created, "model": self.model,
                "images": self.images, "tasks_created": self.tasks_created,
                "tasks_already_there": self.tasks_already_there, "predictions": self.predictions,
                "labels": self.labels, "task_ids": self.task_ids}


def _tasks_json(store: Store, items: Sequence[_Prelabelled], classes: ClassMap
                ) -> tuple[list[dict[str, Any]], str]:
    """Tasks (data + predictions) as `formats.labelstudio` writes them, and the labelling config for them."""
    with tempfile.TemporaryDirectory(prefix="vl-ls-") as tmp:
        formats.write((it.sample for it in items), Path(tmp), format="labelstudio", classes=classes,
                      images=ImageMode.NONE)
        tasks = orjson.loads((Path(tmp) / ls_format.TASKS_NAME).read_bytes())
    used: dict[str, list[str]] = {}
    per_region: dict[str, str] = {}
    for t in tasks:
        for p in t.get("predictions", []):
            regions = {r["id"] for r in p["result"] if r["type"] in ls_format._CONTROL and r["type"] != "choices"}
            for r in p["result"]:
                if r["type"] in ls_format._CONTROL:
                    used.setdefault(r["type"], [])
                elif r["type"] == "textarea" and r["id"] not in regions:  # image-level text: captions
                    used.setdefault("textarea", []).append(r["from_name"])
                elif r["type"] in ("number", "textarea", "choices"):
                    per_region.setdefault(r["from_name"], r["type"])
    if not used:  # nothing pre-labelled: the project's kind of labels
        kinds = {a.geometry.__class__ for it in items for a in it.sample.annotations}
        used["choices" if kinds == {Label} else "rectanglelabels"] = []
    config = ls_format.label_config_xml(classes, used, per_region, every_class=True)
    return tasks, config


def _controls(config: str) -> dict[tuple[str, str], set[str]]:
    """(tag, name) of each control of a labelling config → the values of its Label/Choice children."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return {}
    out: dict[tuple[str, str], set[str]] = {}
    for el in root.iter():
        if el.get("toName") is not None and el.get("name"):
            out[(el.tag.lower(), str(el.get("name")))] = {str(c.get("value")) for c in el if c.get("value")}
    return out


def _config_lacks(existing: str, needed: str) -> str | None:
    """What the tasks' results need that an existing project's config lacks (None when it has all)."""
    have = _controls(existing)
    for key, labels in _controls(needed).items():
        if key not in have:
            return f"a <{key[0]} name={key[1]!r}> control"
        if labels - have[key]:
            return f"label {sorted(labels - have[key])[0]!r} in <{key[0]} name={key[1]!r}>"
    return None


def _existing_keys(tasks: list[dict[str, Any]]) -> set[tuple[Any, Any]]:
    return {((t.get("data") or {}).get("vl_image"), (t.get("data") or {}).get("vl_sha256")) for t in tasks}


def send_to_label_studio(store: Store, url: str, api_key: str, *, tag: str | None = None,
                         image_ids: Sequence[int] | None = None, model: str | int | None = None,
                         project_title: str | None = None, ls_project: int | None = None, conf: float = 0.25,
                         current_labels: bool = True,
                         client_factory: Callable[[str, str], LabelStudio] = LabelStudio) -> SendReport:
    """Send the images of `tag` (or `image_ids`) to a Label Studio project as tasks with pre-labels."""
    picked = selected_images(store, tag=tag, image_ids=image_ids)
    classes = store.classes()
    items, model_version = _prelabel(store, picked, model, conf, current_labels=current_labels)
    tasks, config = _tasks_json(store, items, classes)
    title = project_title or f"visionloop {store.root.name}" + (f" {tag}" if tag else "")
    with client_factory(url, api_key) as ls:
        created = False
        if ls_project is not None:
            proj = ls.project(ls_project)
        else:
            same = [p for p in ls.projects() if p.get("title") == title]
            if len(same) > 1:
                raise LabelStudioError(f"{len(same)} Label Studio projects are titled {title!r}",
                                       hint="name one with --ls-project ID")
            proj = same[0] if same else ls.create_project(title, config)
            created = not same
        pid = int(proj["id"])
        if not created:
            missing = _config_lacks(str(proj.get("label_config") or ""), config)
            if missing:
                raise LabelStudioError(f"Label Studio project {pid}'s labelling config lacks {missing}",
                                       hint="add it in the project's Settings → Labeling Interface, or send to a "
                                            "new project (--project-title)")
        existing = _existing_keys(ls.export(pid)) if not created else set()
        new_tasks, ids, already = [], [], 0
        for it, task in zip(items, tasks, strict=True):
            ref = it.sample.image
            if (it.image_id, ref.sha256) in existing:
                already += 1
                continue
            data, blurred = redact.image_bytes(store, it.image_id)  # never an unblurred face or plate
            suffix = ".png" if blurred else Path(ref.file_name).suffix or ".jpg"
            image_url = ls.upload(pid, f"vl{it.image_id}_{(ref.sha256 or '')[:12]}{suffix}", data)
            new_tasks.append({"data": {"image": image_url, "vl_image": it.image_id, "vl_sha256": ref.sha256,
                                       "vl_file_name": ref.file_name, "vl_split": it.sample.split},
                              "predictions": task.get("predictions", [])})
        if new_tasks:
            ids = ls.import_tasks(pid, new_tasks)
    return SendReport("label-studio", ls.url, pid, str(proj.get("title")), created, model_version, len(items),
                      len(new_tasks), already, sum(it.predictions for it in items),
                      sum(it.labels for it in items), ids)


def send_to_cvat(store: Store, out: str | Path, *, tag: str | None = None, image_ids: Sequence[int] | None = None,
                 model: str | int | None = None, conf: float = 0.25, overwrite: bool = False) -> SendReport:
    """The selection as a CVAT for images 1.1 task folder (`annotations.xml` + `images/`): with `model`, its
    predictions as the pre-labels (shapes with source="auto"... as the CVAT writer writes a model's), else the
    images' current labels. CVAT holds one set of shapes per image, so the two are not mixed."""
    from visionloop.formats.output import atomic_output

    picked = selected_images(store, tag=tag, image_ids=image_ids)
    items, model_version = _prelabel(store, picked, model, conf, current_labels=model is None)
    with atomic_output(Path(out), overwrite=overwrite, format="cvat", protect=[store.root, store.blobs.url]) as tmp, \
            tempfile.TemporaryDirectory(prefix="visionloop-blur-") as blurred:
        # images with blur regions go out blurred, as <stem>.png (as every export)
        formats.write(redact.redact_samples(store, (it.sample for it in items), Path(blurred)), tmp, format="cvat",
                      classes=store.classes(), images=ImageMode.COPY)
    return SendReport("cvat", str(out), None, None, False, model_version, len(items), len(items), 0,
                      sum(it.predictions for it in items), sum(it.labels for it in items))


def export_tasks(store: Store, out: str | Path, *, tag: str | None = None, image_ids: Sequence[int] | None = None,
                 model: str | int | None = None, conf: float = 0.25, current_labels: bool = True) -> SendReport:
    """The tasks `send_to_label_studio` would send, as a Label Studio tasks JSON file (for Label Studio's import
    dialog, or to edit and bring back with `pull_from_file`); each task's ``data.image`` is the image's file
    name (Label Studio needs the image served from its storage to show it)."""
    picked = selected_images(store, tag=tag, image_ids=image_ids)
    items, model_version = _prelabel(store, picked, model, conf, current_labels=current_labels)
    tasks, _ = _tasks_json(store, items, store.classes())
    rows = [{"id": k, "data": {"image": it.sample.image.file_name, "vl_image": it.image_id,
                               "vl_sha256": it.sample.image.sha256, "vl_file_name": it.sample.image.file_name,
                               "vl_split": it.sample.split}, "annotations": [],
             "predictions": task.get("predictions", [])}
            for k, (it, task) in enumerate(zip(items, tasks, strict=True), start=1)]
    out = Path(out)
    if out.exists():
        raise VisionLoopError("the tasks file exists", path=out, hint="name a new file")
    out.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return SendReport("label-studio-file", str(out), None, None, False, model_version, len(items), len(items), 0,
                      sum(it.predictions for it in items), sum(it.labels for it in items))


class _TasksFile:
    """A Label Studio export read from a file, spoken to as `pull_from_label_studio` speaks to a server."""

    def __init__(self, path: Path) -> None:
        self.url = str(path)
        try:
            self.tasks = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise VisionLoopError(f"cannot read the Label Studio tasks file: {e}", path=path,
                                  hint="pass a JSON export of Label Studio (a list of tasks)") from None
        if not isinstance(self.tasks, list):
            raise VisionLoopError("a Label Studio tasks file is a JSON list of tasks", path=path)

    def __enter__(self) -> _TasksFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def export(self, project_id: int) -> list[dict[str, Any]]:
        return list(self.tasks)

    def users(self) -> dict[int, str]:
        return {}


def pull_from_file(store: Store, path: str | Path, *, importer: Importer) -> PullReport:
    """`pull_from_label_studio` over a tasks JSON file (Label Studio's export, or `export_tasks`'s file with the
    labeller's annotations): the same merge, one import batch. An annotation's `completed_by` is kept as given
    (an e-mail in a file edited by hand)."""
    path = Path(path)
    return pull_from_label_studio(store, str(path), "", 0, importer=importer,
                                  client_factory=lambda url, key: _TasksFile(path))  # type: ignore[arg-type,return-value]


# ---------------------------------------------------------------- pull


@dataclass
class PullReport:
    ls_project: int
    url: str
    saved: str  # the export as pulled, kept in the project folder
    tasks: int
    tasks_labelled: int  # with a submitted (not cancelled) annotation
    images_changed: int
    images_unchanged: int
    added: int
    deleted: int
    modified: int
    batch_id: int | None
    annotators: dict[str, int] = field(default_factory=dict)  # e-mail → tasks whose annotation they made
    skipped: dict[str, int] = field(default_factory=dict)  # reason → tasks
    several_annotations: int = 0  # tasks with several submitted annotations: the latest updated one was taken
    prelabels_replaced: int = 0  # model pre-labels (source=model) in the store that the labels replaced
    changes: list[dict[str, Any]] = field(default_factory=list)  # per changed image: id, file, +a, -d, ~m

    def to_json(self) -> dict[str, Any]:
        return {"ls_project": self.ls_project, "url": self.url, "saved": self.saved, "tasks": self.tasks,
                "tasks_labelled": self.tasks_labelled, "images_changed": self.images_changed,
                "images_unchanged": self.images_unchanged, "added": self.added, "deleted": self.deleted,
                "modified": self.modified, "batch_id": self.batch_id, "annotators": self.annotators,
                "skipped": self.skipped, "several_annotations": self.several_annotations,
                "prelabels_replaced": self.prelabels_replaced,
                "changes": self.changes}


def _coords(g: Any) -> tuple[float, ...] | None:
    if isinstance(g, Box):
        return (g.x0, g.y0, g.x1, g.y1)
    if isinstance(g, RotatedBox):
        return (g.cx, g.cy, g.w, g.h, g.angle)
    if isinstance(g, Polygon):
        return tuple(v for ring in g.rings for v in ring)
    if isinstance(g, Polyline):
        return g.points
    if isinstance(g, Label):
        return ()
    return None


def _same(a: Annotation, b: Annotation) -> bool:
    if a.label != b.label or type(a.geometry) is not type(b.geometry):
        return False
    if isinstance(a.geometry, Mask | Caption):
        return bool(a.geometry == b.geometry)
    ca, cb = _coords(a.geometry), _coords(b.geometry)
    if ca is None or cb is None or len(ca) != len(cb):
        return False
    return all(math.isclose(x, y, rel_tol=0.0, abs_tol=MATCH_PX) for x, y in zip(ca, cb, strict=True))


def _box(g: Any) -> Box | None:
    if isinstance(g, Box):
        return g
    bounds = getattr(g, "bounds", None)
    b = bounds() if callable(bounds) else None
    return b if isinstance(b, Box) else None


def _iou(a: Annotation, b: Annotation) -> float:
    p, q = _box(a.geometry), _box(b.geometry)
    if p is None or q is None:
        return 0.0
    inter = max(0.0, min(p.x1, q.x1) - max(p.x0, q.x0)) * max(0.0, min(p.y1, q.y1) - max(p.y0, q.y0))
    union = p.width * p.height + q.width * q.height - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Merged:
    annotations: list[Annotation]  # the image's labels after the submission
    added: int
    deleted: int
    modified: int  # a new region paired with a removed label it overlaps (IoU ≥ PAIR_IOU): moved or re-classed
    prelabels_replaced: int  # the image's model pre-labels (source=model), replaced by the person's labels


def merge_labels(stored: Sequence[Annotation], submitted: Sequence[Annotation], who: dict[str, Any]) -> Merged:
    """The image's labels after a labeller's submission. A submitted region equal to a stored label (same class,
    geometry within MATCH_PX) keeps the stored one as it is, in its stored order; the rest are new
    (source=human, carrying `who`), after them."""
    old = [a for a in stored if a.source is not Source.MODEL]
    left = list(range(len(old)))
    kept: list[int] = []
    new: list[Annotation] = []
    for a in submitted:
        k = next((k for k in left if _same(old[k], a)), None)
        if k is not None:
            left.remove(k)
            kept.append(k)
        else:
            attrs = {key: v for key, v in a.attributes.items() if key != "ls_annotation"}
            new.append(replace(a, source=Source.HUMAN, attributes={**attrs, **who}))
    modified = 0
    for a in new:
        best = max(left, key=lambda k: _iou(old[k], a), default=None)
        if best is not None and _iou(old[best], a) >= PAIR_IOU:
            left.remove(best)
            modified += 1
    return Merged([old[k] for k in sorted(kept)] + new, len(new) - modified, len(left), modified,
                  len(stored) - len(old))


def _when(annotation: dict[str, Any]) -> str:
    return str(annotation.get("updated_at") or annotation.get("created_at") or "")


def _utc(text: str) -> str:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).isoformat()
    except ValueError:
        return text


def pull_from_label_studio(store: Store, url: str, api_key: str, ls_project: int, *, importer: Importer,
                           client_factory: Callable[[str, str], LabelStudio] = LabelStudio) -> PullReport:
    """Import the submitted annotations of a Label Studio project as one batch (see the module). `importer` is
    the ordinary import of samples made in memory, `visionloop.ingest.import_samples` (a stage beside this one,
    so passed in by the caller, as the layer contract wants)."""
    with client_factory(url, api_key) as ls:
        tasks = ls.export(ls_project)
        users = ls.users()
        base = ls.url
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = store.root / PULL_FOLDER
    folder.mkdir(exist_ok=True)
    saved = folder / f"project-{int(ls_project)}-{stamp}.json"
    saved.write_bytes(orjson.dumps(tasks))

    skipped: Counter[str] = Counter()
    annotators: Counter[str] = Counter()
    several = 0
    chosen: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (task, its annotation)
    for t in tasks:
        data = t.get("data") or {}
        if "vl_image" not in data or "vl_sha256" not in data:
            skipped["task not sent by visionloop (no vl_image / vl_sha256 in its data)"] += 1
            continue
        subs = [a for a in t.get("annotations") or [] if not a.get("was_cancelled")]
        if not subs:
            skipped["no submitted annotation yet" if not t.get("annotations") else "annotation cancelled"] += 1
            continue
        if len(subs) > 1:
            several += 1
        chosen.append((t, max(subs, key=lambda a: (_when(a), int(a.get("id") or 0)))))

    # the images the tasks name, as stored
    rows = {r.id: r for r in tag_store.images(store)}
    by_sha: dict[str, list[int]] = {}
    for r in rows.values():
        by_sha.setdefault(r.sha256, []).append(r.id)
    targets: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for t, a in chosen:
        data = t["data"]
        iid = data.get("vl_image")
        sha = str(data.get("vl_sha256"))
        if not (isinstance(iid, int) and iid in rows and rows[iid].sha256 == sha):
            same = by_sha.get(sha, [])
            if len(same) != 1:
                skipped["its image is no longer in the project" if not same
                        else "its image's bytes are in several images and its id is gone"] += 1
                log.warning("Label Studio task %s: image %s (%s) %s", t.get("id"), iid, sha[:12],
                            "not in the project" if not same else "ambiguous")
                continue
            iid = same[0]
        if iid in targets:
            skipped["a second task for the same image (the first was taken)"] += 1
            continue
        targets[iid] = (t, a)

    # the chosen annotations, read by the Label Studio format reader
    with tempfile.TemporaryDirectory(prefix="vl-ls-pull-") as tmp:
        one = Path(tmp) / ls_format.TASKS_NAME
        order = list(targets)
        one.write_bytes(orjson.dumps([{"id": targets[i][0].get("id"), "data": {"image": targets[i][0]["data"]
                                       .get("image", "")}, "annotations": [targets[i][1]]} for i in order]))
        submitted = {iid: s for iid, s in zip(order, ls_format.read(one), strict=True)}

    stored = {iid: s for iid, s in _samples_of(store, [rows[i] for i in targets])}
    classes = store.classes()
    samples: list[Sample] = []
    changes: list[dict[str, Any]] = []
    added = deleted = modified = unchanged = prelabels = 0
    for iid in targets:
        t, a = targets[iid]
        s = stored[iid]
        email = users.get(int(a["completed_by"])) if isinstance(a.get("completed_by"), int) else None
        if isinstance(a.get("completed_by"), dict):
            email = a["completed_by"].get("email")
        who = {"labelled_by": email or str(a.get("completed_by")), "labelled_at": _utc(_when(a))}
        annotators[who["labelled_by"]] += 1
        m = merge_labels(s.annotations, submitted[iid].annotations, who)
        anns, plus, minus, moved = m.annotations, m.added, m.deleted, m.modified
        prelabels += m.prelabels_replaced
        for ann in anns:
            if ann.label not in classes and not ann.is_caption:
                classes.add(ann.label)
        if plus or minus or moved or m.prelabels_replaced:
            changes.append({"image_id": iid, "file_name": s.image.file_name, "added": plus, "deleted": minus,
                            "modified": moved, "prelabels_replaced": m.prelabels_replaced, "ls_task": t.get("id"),
                            **who})
        else:
            unchanged += 1
        added, deleted, modified = added + plus, deleted + minus, modified + moved
        samples.append(replace(s, annotations=tuple(anns), state=LabelState.ANNOTATED if anns else LabelState.NULL))
    reader = formats.Reader(classes, lambda: iter(samples), source=saved)
    report = importer(store, reader, saved, format="labelstudio")
    if report.batch_id is not None:
        with store.engine.begin() as conn:
            row = batch_store.batch_row(conn, report.batch_id)
            batch_store.set_summary(conn, report.batch_id, {
                **dict(row.summary or {}), "label_studio": {
                    "url": base, "project": int(ls_project), "export": str(saved),
                    "annotators": dict(annotators), "added": added, "deleted": deleted, "modified": modified,
                    "prelabels_replaced": prelabels}})
    return PullReport(int(ls_project), base, str(saved), len(tasks), len(chosen), len(changes), unchanged, added,
                      deleted, modified, report.batch_id, dict(annotators), dict(skipped),
                      several_annotations=several, prelabels_replaced=prelabels, changes=changes)

