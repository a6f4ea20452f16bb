"""API tokens (bearer tokens for the JSON API, stored as SHA-256 hashes)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import common.models.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manireports_api_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=8), nullable=False),
        sa.Column("companyid", sa.BigInteger(), nullable=True),
        sa.Column("scopes", sa.String(length=255), nullable=False),
        sa.Column("createdby", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", common.models.base.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", common.models.base.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", common.models.base.UTCDateTime(), nullable=True),
        sa.Column("timecreated", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_manireports_api_tokens_token_hash")),
    )
    with op.batch_alter_table("manireports_api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_api_tokens_userid"), ["userid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manireports_api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_api_tokens_userid"))

    op.drop_table("manireports_api_tokens")
