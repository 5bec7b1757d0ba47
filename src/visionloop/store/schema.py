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
    MetaData,
    String,
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

    The same bytes under two names are two images over one blob (health finds
    them as duplicates); the same bytes under the same name are one image, which
    is what makes a re-import add nothing.
    """

    __tablename__ = "image"
    __table_args__ = (UniqueConstraint("sha256", "file_name"),)
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
    class_id: Mapped[int] = mapped_column(ForeignKey("class.id"))
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
