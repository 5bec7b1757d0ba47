"""image identity includes the split (train/a.jpg and valid/a.jpg with the same bytes are two images)

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_constraint("uq_image_sha256", type_="unique")
        batch_op.create_unique_constraint("uq_image_sha256", ["sha256", "file_name", "split"])


def downgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_constraint("uq_image_sha256", type_="unique")
        batch_op.create_unique_constraint("uq_image_sha256", ["sha256", "file_name"])
