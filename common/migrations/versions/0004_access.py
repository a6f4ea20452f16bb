"""access tables (audit log, capability grants, sign-in throttling)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import common.models.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manireports_audit_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("companyid", sa.BigInteger(), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("timecreated", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_audit_logs")),
    )
    with op.batch_alter_table("manireports_audit_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_manireports_audit_logs_action_time", ["action", "timecreated"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_audit_logs_companyid"), ["companyid"], unique=False
        )
        batch_op.create_index(
            "ix_manireports_audit_logs_ip_time", ["ip", "timecreated"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_audit_logs_timecreated"), ["timecreated"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_audit_logs_userid"), ["userid"], unique=False
        )

    op.create_table(
        "manireports_capability_grants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("userid", sa.BigInteger(), nullable=False),
        sa.Column("capability", sa.String(length=100), nullable=False),
        sa.Column("grantedby", sa.BigInteger(), nullable=True),
        sa.Column("timecreated", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_capability_grants")),
        sa.UniqueConstraint(
            "userid", "capability", name=op.f("uq_manireports_capability_grants_userid_capability")
        ),
    )
    with op.batch_alter_table("manireports_capability_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manireports_capability_grants_userid"), ["userid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manireports_capability_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_capability_grants_userid"))

    op.drop_table("manireports_capability_grants")
    with op.batch_alter_table("manireports_audit_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_audit_logs_userid"))
        batch_op.drop_index(batch_op.f("ix_manireports_audit_logs_timecreated"))
        batch_op.drop_index("ix_manireports_audit_logs_ip_time")
        batch_op.drop_index(batch_op.f("ix_manireports_audit_logs_companyid"))
        batch_op.drop_index("ix_manireports_audit_logs_action_time")

    op.drop_table("manireports_audit_logs")
