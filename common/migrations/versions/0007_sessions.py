"""server-side web sessions and atomic sign-in attempt counters

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import common.models.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manireports_web_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("created", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_seen", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("expires", common.models.base.UTCDateTime(), nullable=False),
        sa.Column("revoked", common.models.base.UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_web_sessions")),
        sa.UniqueConstraint("sid_hash", name=op.f("uq_manireports_web_sessions_sid_hash")),
    )
    with op.batch_alter_table("manireports_web_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_web_sessions_expires"), ["expires"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_web_sessions_userid"), ["userid"], unique=False
        )

    op.create_table(
        "manireports_signin_counters",
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_start", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_manireports_signin_counters")),
    )
    with op.batch_alter_table("manireports_signin_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_signin_counters_window_start"),
            ["window_start"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("manireports_signin_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_signin_counters_window_start"))
    op.drop_table("manireports_signin_counters")
    with op.batch_alter_table("manireports_web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_web_sessions_userid"))
        batch_op.drop_index(batch_op.f("ix_manireports_web_sessions_expires"))
    op.drop_table("manireports_web_sessions")
