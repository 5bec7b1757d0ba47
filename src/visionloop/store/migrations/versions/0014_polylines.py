"""polylines are a geometry of their own: the open lines that earlier readers kept as keypoints with a marker
attribute become `polyline` annotations

Revision ID: 0014
Revises: 0013

Before the Polyline geometry (commit ac8ad67), five readers stored an open line as `Keypoints`, every point
visible (v=2), and named the shape in an attribute that only they set, after the source's own attributes:
CVAT (images and video) ``cvat_shape: "polyline"``, VIA and VIA CSV ``via_shape: "polyline"``, VoTT
``vott_shape: "polyline"``, Supervisely ``sly_shape: "line"``, Labelbox ``labelbox_shape: "line"`` (the other
readers skipped lines: there is nothing to convert). A keypoints annotation is such a line when a marker says so,
no marker says another shape, it has at least two points, all of them visible (v=2), and its class has no keypoint
names (a skeleton's points are not a line). It becomes a Polyline of the same points, in order, without the
marker attributes (an import of today gives the line no such attribute); its box and area are computed again by
the running code's `store.codec`, as is the image's `ann_digest`, so that importing the same dataset again changes
nothing (a line that reaches outside its image is kept whole: today's import would cut it, `health` reports it).
Anything else is left as it is. The change log's snapshots of those rows (and the image's digest where a
snapshot has the one it had) are converted the same way, so that undoing an earlier batch still finds the rows as
it left them. Versions are immutable and keep what they were generated with.

Downgrading turns every polyline back into keypoints with CVAT's marker, ``cvat_shape: "polyline"`` (which
reader it came from is not kept), and the image's digest with it; the change log is left as it is.
"""

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: the marker attribute each earlier reader gave a line, and its value
MARKERS = {"cvat_shape": "polyline", "via_shape": "polyline", "vott_shape": "polyline", "sly_shape": "line",
           "labelbox_shape": "line"}
#: the marker the downgrade writes
DOWN_MARKER = ("cvat_shape", "polyline")

_COLUMNS = ("kind", "x0", "y0", "x1", "y1", "area", "data", "attributes")
_image = sa.table("image", sa.column("id", sa.Integer), sa.column("state", sa.String),
                  sa.column("ann_digest", sa.String))
_annotation = sa.table(
    "annotation", sa.column("id", sa.Integer), sa.column("image_id", sa.Integer), sa.column("class_id", sa.Integer),
    sa.column("kind", sa.String), sa.column("x0", sa.Float), sa.column("y0", sa.Float), sa.column("x1", sa.Float),
    sa.column("y1", sa.Float), sa.column("area", sa.Float), sa.column("bbox_declared", sa.Boolean),
    sa.column("area_declared", sa.Boolean), sa.column("data", sa.JSON), sa.column("attributes", sa.JSON),
    sa.column("source", sa.String), sa.column("confidence", sa.Float), sa.column("track_id", sa.Integer),
    sa.column("crowd", sa.Boolean), sa.column("batch_id", sa.Integer))
_class = sa.table("class", sa.column("id", sa.Integer), sa.column("name", sa.String),
                  sa.column("keypoints", sa.JSON))
_change = sa.table("change", sa.column("id", sa.Integer), sa.column("table_name", sa.String),
                   sa.column("row_id", sa.Integer), sa.column("before", sa.JSON), sa.column("after", sa.JSON))


def _line(row: dict[str, Any], named: set[int]) -> dict[str, Any] | None:
    """The columns that change when an annotation row (a column dict) is an earlier reader's line, else None."""
    from visionloop.core.geometry import Polyline
    from visionloop.store import codec

    attributes = row.get("attributes")
    if row.get("kind") != "keypoints" or not isinstance(attributes, dict) or row.get("class_id") in named:
        return None
    said = {k: attributes[k] == v for k, v in MARKERS.items() if k in attributes}
    if not said or not all(said.values()):
        return None  # no marker, or one that names another shape (a CVAT <points>): not a line
    points = (row.get("data") or {}).get("points")
    if not isinstance(points, list) or len(points) % 3 or len(points) < 6 \
            or not all(type(v) in (int, float) for v in points) or any(v != 2 for v in points[2::3]):
        return None
    xy = tuple(float(v) for i, v in enumerate(points) if i % 3 != 2)
    ann = codec.annotation_from(_Row(row), "line")  # its other fields (declared box, area...); the label is not a column
    line = codec.annotation_row(replace(ann, geometry=Polyline(xy),
                                        attributes={k: v for k, v in attributes.items() if k not in said}))
    return {k: line[k] for k in _COLUMNS}


class _Row:
    """A column dict seen as a row (what `codec.annotation_from` reads)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update({"bbox_declared": False, "area_declared": False, "confidence": None, "track_id": None,
                              "crowd": False, "source": "imported", **d})


def _digest(conn: sa.Connection, image_id: int, state: str) -> str:
    """What an import computes for the image's annotations as they are now (the running code's codec)."""
    from visionloop.store import codec

    return codec.stored_digest(conn, _annotation, _class, image_id, state)


def upgrade() -> None:
    conn = op.get_bind()
    named = {i for i, kp in conn.execute(sa.select(_class.c.id, _class.c.keypoints)) if kp}
    rows = conn.execute(sa.select(_annotation).where(_annotation.c.kind == "keypoints")
                        .where(sa.or_(*(sa.cast(_annotation.c.attributes, sa.Text).like(f'%"{k}"%') for k in MARKERS)))
                        .order_by(_annotation.c.id)).mappings().all()
    images: set[int] = set()
    for row in rows:
        new = _line(dict(row), named)
        if new is not None:
            conn.execute(sa.update(_annotation).where(_annotation.c.id == row["id"]).values(**new))
            images.add(row["image_id"])
    digests: dict[int, tuple[str, str]] = {}
    for image_id in sorted(images):
        state, old = conn.execute(sa.select(_image.c.state, _image.c.ann_digest).where(_image.c.id == image_id)).one()
        new_digest = _digest(conn, image_id, state)
        conn.execute(sa.update(_image).where(_image.c.id == image_id).values(ann_digest=new_digest))
        digests[image_id] = (old, new_digest)
    _convert_log(conn, named, digests)


def _convert_log(conn: sa.Connection, named: set[int], digests: dict[int, tuple[str, str]]) -> None:
    """The change log's snapshots as the rows now are: lines converted, an image's digest where it was the one the
    image had before the upgrade."""
    for cid, table, row_id, before, after in conn.execute(
            sa.select(_change.c.id, _change.c.table_name, _change.c.row_id, _change.c.before, _change.c.after)
            .where(_change.c.table_name.in_(("annotation", "image")))).all():
        values: dict[str, Any] = {}
        for name, snap in (("before", before), ("after", after)):
            if not isinstance(snap, dict):
                continue
            if table == "annotation" and (new := _line(snap, named)) is not None:
                values[name] = {**snap, **new}
            elif table == "image" and row_id in digests and snap.get("ann_digest") == digests[row_id][0]:
                values[name] = {**snap, "ann_digest": digests[row_id][1]}
        if values:
            conn.execute(sa.update(_change).where(_change.c.id == cid).values(**values))


def downgrade() -> None:
    conn = op.get_bind()
    key, value = DOWN_MARKER
    rows = conn.execute(sa.select(_annotation.c.id, _annotation.c.image_id, _annotation.c.data,
                                  _annotation.c.attributes).where(_annotation.c.kind == "polyline")).all()
    for ann_id, _, data, attributes in rows:
        xy = (data or {}).get("points") or []
        points = [v for x, y in zip(xy[0::2], xy[1::2], strict=True) for v in (x, y, 2.0)]
        conn.execute(sa.update(_annotation).where(_annotation.c.id == ann_id).values(
            kind="keypoints", data={"points": points}, attributes={**(attributes or {}), key: value}))
    for image_id in sorted({r[1] for r in rows}):
        state = conn.execute(sa.select(_image.c.state).where(_image.c.id == image_id)).scalar_one()
        conn.execute(sa.update(_image).where(_image.c.id == image_id).values(ann_digest=_digest(conn, image_id, state)))
