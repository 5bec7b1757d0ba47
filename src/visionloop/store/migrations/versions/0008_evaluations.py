"""evaluations: a model's metrics on a version's split, and its error events

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("version_name", sa.String(length=64), nullable=False),
        sa.Column("split", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("code_version", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_evaluation_model_id_model"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["version.id"], name=op.f("fk_evaluation_version_id_version"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation")),
    )
    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evaluation_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_evaluation_version_id"), ["version_id"], unique=False)

    op.create_table(
        "error_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=16), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=256), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=128), nullable=False),
        sa.Column("gt_category", sa.String(length=128), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("pred_box", sa.JSON(), nullable=True),
        sa.Column("gt_box", sa.JSON(), nullable=True),
        sa.Column("gt_id", sa.Integer(), nullable=True),
        sa.Column("iou", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluation.id"],
                                name=op.f("fk_error_event_evaluation_id_evaluation"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_event")),
    )
    with op.batch_alter_table("error_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_error_event_evaluation_id"), ["evaluation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("error_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_error_event_evaluation_id"))
    op.drop_table("error_event")
    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluation_version_id"))
        batch_op.drop_index(batch_op.f("ix_evaluation_model_id"))
    op.drop_table("evaluation")
