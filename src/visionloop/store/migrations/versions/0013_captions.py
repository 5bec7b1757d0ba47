"""captions are annotations: annotation.class_id may be NULL (a caption has no class), and the captions that
earlier readers kept in an image's metadata (`meta["captions"]`, a list of strings) become caption annotations

Revision ID: 0013
Revises: 0012

The images that gain captions become `annotated` (captions are annotations), and their `ann_digest` is
computed again by the running code's `store.codec`, as an import computes it, so that importing the same
dataset again changes nothing. The caption rows belong to the batch that brought the image. Versions are
immutable and keep what they were generated with. Downgrading moves caption rows back into `meta["captions"]`.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

KEY = "captions"

_image = sa.table("image", sa.column("id", sa.Integer), sa.column("meta", sa.JSON), sa.column("state", sa.String),
                  sa.column("ann_digest", sa.String), sa.column("batch_id", sa.Integer))
_annotation = sa.table(
    "annotation", sa.column("id", sa.Integer), sa.column("image_id", sa.Integer), sa.column("class_id", sa.Integer),
    sa.column("kind", sa.String), sa.column("x0", sa.Float), sa.column("y0", sa.Float), sa.column("x1", sa.Float),
    sa.column("y1", sa.Float), sa.column("area", sa.Float), sa.column("bbox_declared", sa.Boolean),
    sa.column("area_declared", sa.Boolean), sa.column("data", sa.JSON), sa.column("attributes", sa.JSON),
    sa.column("source", sa.String), sa.column("confidence", sa.Float), sa.column("track_id", sa.Integer),
    sa.column("crowd", sa.Boolean), sa.column("batch_id", sa.Integer))
_class = sa.table("class", sa.column("id", sa.Integer), sa.column("name", sa.String))


def _digest(conn: sa.Connection, image_id: int, state: str) -> str:
    """What an import computes for the image's annotations as they are now (the running code's codec)."""
    from visionloop.store import codec

    return codec.stored_digest(conn, _annotation, _class, image_id, state)


def upgrade() -> None:
    with op.batch_alter_table("annotation", schema=None) as batch_op:
        batch_op.alter_column("class_id", existing_type=sa.Integer(), nullable=True)
    conn = op.get_bind()
    found = conn.execute(sa.select(_image.c.id, _image.c.meta, _image.c.batch_id)
                         .where(sa.cast(_image.c.meta, sa.Text).like(f'%"{KEY}"%')).order_by(_image.c.id)).all()
    for image_id, meta, batch_id in found:
        texts = (meta or {}).get(KEY)
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            continue  # not what a reader wrote there: left as it is
        conn.execute(sa.insert(_annotation), [{
            "image_id": image_id, "class_id": None, "kind": "caption", "x0": None, "y0": None, "x1": None,
            "y1": None, "area": 0.0, "bbox_declared": False, "area_declared": False, "data": {"text": t},
            "attributes": {}, "source": "imported", "confidence": None, "track_id": None, "crowd": False,
            "batch_id": batch_id} for t in texts])
        rest: dict[str, Any] = {k: v for k, v in meta.items() if k != KEY}
        conn.execute(sa.update(_image).where(_image.c.id == image_id).values(
            meta=rest, state="annotated", ann_digest=_digest(conn, image_id, "annotated")))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_annotation.c.image_id, _annotation.c.data).where(_annotation.c.kind == "caption")
                        .order_by(_annotation.c.image_id, _annotation.c.id)).all()
    texts: dict[int, list[str]] = {}
    for image_id, data in rows:
        texts.setdefault(image_id, []).append(str((data or {}).get("text", "")))
    conn.execute(sa.delete(_annotation).where(_annotation.c.kind == "caption"))
    for image_id, captions in texts.items():
        meta, state = conn.execute(sa.select(_image.c.meta, _image.c.state).where(_image.c.id == image_id)).one()
        left = conn.execute(sa.select(sa.func.count()).select_from(_annotation)
                            .where(_annotation.c.image_id == image_id)).scalar()
        state = state if left else "null"
        conn.execute(sa.update(_image).where(_image.c.id == image_id).values(
            meta={**(meta or {}), KEY: captions}, state=state, ann_digest=_digest(conn, image_id, state)))
    with op.batch_alter_table("annotation", schema=None) as batch_op:
        batch_op.alter_column("class_id", existing_type=sa.Integer(), nullable=False)
