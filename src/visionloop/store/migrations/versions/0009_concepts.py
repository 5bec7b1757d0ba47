"""concepts: yes/no heads taught from a few images on frozen embeddings, and their training images

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concept",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("embedder", sa.String(length=256), nullable=False),
        sa.Column("embedder_sha256", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("head", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concept")),
        sa.UniqueConstraint("name", name=op.f("uq_concept_name")),
    )
    op.create_table(
        "concept_image",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("concept_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["concept_id"], ["concept.id"], name=op.f("fk_concept_image_concept_id_concept"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concept_image")),
    )
    with op.batch_alter_table("concept_image", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_concept_image_concept_id"), ["concept_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("concept_image", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concept_image_concept_id"))
    op.drop_table("concept_image")
    op.drop_table("concept")
