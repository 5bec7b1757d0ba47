"""ORM rows of the project store (SQLAlchemy 2). Migrations live in `migrations/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Sha256 = Annotated[str, mapped_column(String(64))]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class BatchRow(Base):
    """One import (or fix) of data into the project: where from, when, what it did."""

    __tablename__ = "batch"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # import | fix
    source: Mapped[str]
    format: Mapped[str | None] = mapped_column(String(64))
    split: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BlobRow(Base):
    """Bytes in the content-addressed blob store, once per distinct content."""

    __tablename__ = "blob"
    sha256: Mapped[Sha256] = mapped_column(primary_key=True)
    size: Mapped[int]
    media_format: Mapped[str | None] = mapped_column(String(16))


class ImageRow(Base):
    """An image of the dataset: a blob under a file name, with its split and label state.

    An image is identified by (bytes, name, split): the same bytes under two
    names, or in two splits (train/a.jpg and valid/a.jpg, a leak), are two
    images over one blob, which health finds as duplicates; the same bytes under
    the same name in the same split are one image, which is what makes a
    re-import add nothing.
    """

    __tablename__ = "image"
    __table_args__ = (UniqueConstraint("sha256", "file_name", "split"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[Sha256] = mapped_column(ForeignKey("blob.sha256"), index=True)
    file_name: Mapped[str]
    split: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))  # annotated | null | missing
    width: Mapped[int]  # upright, EXIF orientation applied
    height: Mapped[int]
    orientation: Mapped[int] = mapped_column(default=1)
    format: Mapped[str | None] = mapped_column(String(16))
    gps_lat: Mapped[float | None]
    gps_lon: Mapped[float | None]
    gps_alt: Mapped[float | None]
    heading: Mapped[float | None]
    taken_at: Mapped[str | None] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    ann_digest: Mapped[str] = mapped_column(String(64))  # what the annotations were, for idempotence
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    annotations: Mapped[list[AnnotationRow]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )


class ClassRow(Base):
    __tablename__ = "class"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    external_id: Mapped[int]  # the id formats see (COCO category id, YOLO index)
    position: Mapped[int]
    color: Mapped[str | None] = mapped_column(String(9))
    supercategory: Mapped[str | None]
    keypoints: Mapped[list[Any]] = mapped_column(default=list)
    skeleton: Mapped[list[Any]] = mapped_column(default=list)


class AnnotationRow(Base):
    """One annotation. x0..y1 hold its box (declared or derived) for fast SQL aggregates."""

    __tablename__ = "annotation"
    __table_args__ = (Index("ix_annotation_class_image", "class_id", "image_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("class.id"))  # NULL for a caption: it has no class
    kind: Mapped[str] = mapped_column(String(16))
    x0: Mapped[float | None] = mapped_column(Float)
    y0: Mapped[float | None] = mapped_column(Float)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    area: Mapped[float | None] = mapped_column(Float)
    bbox_declared: Mapped[bool] = mapped_column(Boolean, default=False)
    area_declared: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # geometry payload
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float | None] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    crowd: Mapped[bool] = mapped_column(Boolean, default=False)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    image: Mapped[ImageRow] = relationship(back_populates="annotations")


class LineageRow(Base):
    """artifact ← input, with the parameters and code version that made it."""

    __tablename__ = "lineage"
    id: Mapped[int] = mapped_column(primary_key=True)
    child_kind: Mapped[str] = mapped_column(String(16))
    child_id: Mapped[str] = mapped_column(String(64))
    parent_kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChangeRow(Base):
    """One row-level change made by a batch (a fix, a relabel), so the batch can be undone.

    `before` is the row as it was (None for an insert), `after` as it became
    (None for a delete); both are plain column dicts.
    """

    __tablename__ = "change"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    table_name: Mapped[str] = mapped_column(String(32))
    row_id: Mapped[int]
    op: Mapped[str] = mapped_column(String(8))  # insert | update | delete
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class VersionRow(Base):
    """A dataset version: a recipe applied to a frozen selection of images. Immutable once ready.

    `done` counts the source images whose outputs are stored (the resume point
    while `status` is generating); `source_digest` fingerprints the selection,
    so a resume refuses a source that changed meanwhile.
    """

    __tablename__ = "version"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("version.id"))
    status: Mapped[str] = mapped_column(String(16))  # generating | ready
    recipe: Mapped[dict[str, Any]]
    recipe_hash: Mapped[str] = mapped_column(String(64), index=True)
    seed: Mapped[int]
    source_batches: Mapped[list[Any]] = mapped_column(default=list)
    source_digest: Mapped[str] = mapped_column(String(64))
    content_digest: Mapped[str | None] = mapped_column(String(64))
    classes: Mapped[list[Any]] = mapped_column(default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total: Mapped[int] = mapped_column(default=0)  # source images selected
    done: Mapped[int] = mapped_column(default=0)
    code_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VersionItemRow(Base):
    """One generated image of a version: its blob, split, name and annotations (compact JSON text)."""

    __tablename__ = "version_item"
    __table_args__ = (
        UniqueConstraint("version_id", "position", "out_index", name="uq_version_item_output"),
        UniqueConstraint("version_id", "file_name", name="uq_version_item_file_name"),
        Index("ix_version_item_version_split", "version_id", "split"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("version.id", ondelete="CASCADE"))
    position: Mapped[int]  # the source image's place in the version's order
    out_index: Mapped[int]  # which output of that image (tile, object, augmented copy)
    split: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str]
    sha256: Mapped[Sha256] = mapped_column(index=True)
    width: Mapped[int]
    height: Mapped[int]
    orientation: Mapped[int] = mapped_column(default=1)
    media_format: Mapped[str | None] = mapped_column(String(16))
    source_image_id: Mapped[int] = mapped_column(index=True)  # no foreign key: the version outlives edits
    n_annotations: Mapped[int] = mapped_column(default=0)
    annotations: Mapped[str] = mapped_column(Text)
    meta: Mapped[str] = mapped_column(Text, default="{}")


class ModelRow(Base):
    """A trained model in the registry: what it does, how to feed it, what it scored, what made it.

    `status` is training | ready | failed; `stage` is preview → beta → ga. `checkpoint` is the
    project-relative folder of its training checkpoints (resume); `weights_sha256` the blob of the
    final torch weights.
    """

    __tablename__ = "model"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    task: Mapped[str] = mapped_column(String(16))  # detect | classify | ...
    arch: Mapped[str] = mapped_column(String(64))
    weights_init: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="training")
    stage: Mapped[str] = mapped_column(String(16), default="preview")
    version_id: Mapped[int | None] = mapped_column(ForeignKey("version.id", ondelete="SET NULL"), index=True)
    version_name: Mapped[str] = mapped_column(String(64))  # kept when the version is deleted
    classes: Mapped[list[Any]] = mapped_column(default=list)
    input_size: Mapped[list[Any]] = mapped_column(default=list)  # [width, height]
    preprocessing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hyper: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    history: Mapped[list[Any]] = mapped_column(default=list)  # one dict per epoch
    checkpoint: Mapped[str | None] = mapped_column(String(256))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelExportRow(Base):
    """One export of a model to a runtime format (onnx fp32 / int8): its blob, parity and accuracy delta."""

    __tablename__ = "model_export"
    __table_args__ = (UniqueConstraint("model_id", "format", "precision", name="uq_model_export_target"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    precision: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[Sha256]
    size_bytes: Mapped[int]
    parity: Mapped[dict[str, Any]] = mapped_column(default=dict)  # max abs diff vs torch, ...
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)  # accuracy on the validation split, delta
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the metadata_props written into the file
    code_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    """An API key of the HTTP server: only the SHA-256 of the token is stored, never the token.

    `prefix` is the token's public id (`vl_<prefix>_<secret>`), shown in listings and used for the lookup;
    `scopes` is a list of predict | upload | admin; `rate_limit` is requests per minute (None: the server's default).
    """

    __tablename__ = "api_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    hash: Mapped[Sha256]
    name: Mapped[str] = mapped_column(String(128), default="")
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    rate_limit: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FeedbackRow(Base):
    """A user's correction of a served prediction, kept for relabelling (the loop stage reads these).

    `prediction` is what the model answered, `correction` what the user says is right (boxes/labels with class
    names); the image is a blob when it was sent. `status` is open | used | dismissed.
    """

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # the image blob
    image_name: Mapped[str] = mapped_column(String(256), default="")
    prediction: Mapped[list[Any]] = mapped_column(default=list)
    correction: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    key_prefix: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvaluationRow(Base):
    """One evaluation of a model on a split of a version: its metrics (COCO or classification, confusion,
    TIDE breakdown) as JSON; its false positives and false negatives are `error_event` rows."""

    __tablename__ = "evaluation"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("version.id", ondelete="SET NULL"), index=True)
    version_name: Mapped[str] = mapped_column(String(64))  # kept when the version is deleted
    split: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # thresholds, export used
    images: Mapped[int] = mapped_column(default=0)
    code_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ErrorEventRow(Base):
    """One false positive or false negative of an evaluation (see `evaluate.errors.ErrorEvent`); boxes are
    COCO [x, y, w, h] in the image's pixels: `box` the event's own, `pred_box` / `gt_box` the two it concerns."""

    __tablename__ = "error_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluation.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # false_positive | false_negative
    error: Mapped[str] = mapped_column(String(16))  # missed | background | localization | ...
    image_id: Mapped[int]  # the image's id in the version's COCO export of the split
    file_name: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str | None] = mapped_column(String(64))  # the image blob
    category: Mapped[str] = mapped_column(String(128))
    gt_category: Mapped[str | None] = mapped_column(String(128))
    score: Mapped[float | None] = mapped_column(Float)
    box: Mapped[list[Any] | None] = mapped_column(JSON)
    pred_box: Mapped[list[Any] | None] = mapped_column(JSON)
    gt_box: Mapped[list[Any] | None] = mapped_column(JSON)
    gt_id: Mapped[int | None]
    iou: Mapped[float] = mapped_column(Float, default=0.0)


class ConceptRow(Base):
    """A concept taught from a few images (`visionloop concepts train`): a yes/no head on frozen embeddings.

    `embedder` names the embedding model (`efficientnet_lite0.imagenet@224`, or a user ONNX file by hash);
    `embedder_sha256` is the blob of its ONNX graph, so prediction runs on ONNX Runtime alone. `head` holds the
    fitted model (kind logistic | prototype, weights, bias, threshold, fit statistics)."""

    __tablename__ = "concept"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # logistic | prototype
    embedder: Mapped[str] = mapped_column(String(256))
    embedder_sha256: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int]
    threshold: Mapped[float] = mapped_column(Float)
    head: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConceptImageRow(Base):
    """One training image of a concept: its blob, its role (positive | negative) and the name it had."""

    __tablename__ = "concept_image"
    id: Mapped[int] = mapped_column(primary_key=True)
    concept_id: Mapped[int] = mapped_column(ForeignKey("concept.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(256))


class PredictionLogRow(Base):
    """One served image that the server's sampling rules kept (`visionloop serve --log-predictions`): append-only.

    `model` is the name the request asked for (a model or a task family), `model_name` / `model_version` the
    registry model that answered (its name and id). The image is a blob; `predictions` is the served answer
    (class, class_id, confidence, box / mask as in the response). `max_confidence` / `min_confidence` are over
    those predictions (NULL when there are none) and `classes` lists the predicted class names as `,a,b,`
    (so a class filter is one LIKE on any database). `embedding` stays NULL until an embedding job fills it.
    """

    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_model_created_at", "model", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    model: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int]
    task: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # the image blob
    image_name: Mapped[str] = mapped_column(String(256), default="")
    width: Mapped[int]
    height: Mapped[int]
    predictions: Mapped[list[Any]] = mapped_column(default=list)
    count: Mapped[int] = mapped_column(Integer, default=0)
    max_confidence: Mapped[float | None] = mapped_column(Float)
    min_confidence: Mapped[float | None] = mapped_column(Float)
    classes: Mapped[str] = mapped_column(Text, default=",")
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 vector; NULL until computed
    embedding_model: Mapped[str | None] = mapped_column(String(256))
    key_prefix: Mapped[str | None] = mapped_column(String(16))


class EmbeddingRow(Base):
    """One image's embedding under one embedding model (`visionloop embed`): a unit-norm float32 vector.

    Keyed by the image's blob, so the same bytes under two names are embedded once; `embedder` names the
    model as concepts do (`efficientnet_lite0.imagenet@224`, or `onnx:NAME@HASH`)."""

    __tablename__ = "embedding"
    __table_args__ = (UniqueConstraint("sha256", "embedder"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    embedder: Mapped[str] = mapped_column(String(256), index=True)
    dim: Mapped[int]
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BlurRegionRow(Base):
    """One region of an image to blur for privacy (`visionloop blur`): a face or plate a detector found, or one a
    user added. Boxes are x0, y0, x1, y1 in the image's upright pixels; `source` names the detector (a registry
    model) or is "user"; `state` is blur | rejected (a user said it is no face / no plate). Every export blurs
    the regions in state blur; the stored image bytes stay as imported."""

    __tablename__ = "blur_region"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id"), index=True)
    cls: Mapped[str] = mapped_column(String(64))
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # blur | rejected
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
