"""blur_region: privacy regions (faces, plates) per image, found by a detector or added by a user

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blur_region",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("cls", sa.String(length=64), nullable=False),
        sa.Column("x0", sa.Float(), nullable=False),
        sa.Column("y0", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_blur_region_batch_id_batch")),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"], name=op.f("fk_blur_region_image_id_image")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blur_region")),
    )
    with op.batch_alter_table("blur_region", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blur_region_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blur_region_image_id"), ["image_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blur_region", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blur_region_image_id"))
        batch_op.drop_index(batch_op.f("ix_blur_region_batch_id"))
    op.drop_table("blur_region")
