"""addresses unsubscribed from a company's bulk email (RFC 8058 one-click)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import common.models.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manireports_mail_unsubscribes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("companyid", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("userid", sa.BigInteger(), nullable=True),
        sa.Column("jobid", sa.BigInteger(), nullable=True),
        sa.Column("timecreated", common.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manireports_mail_unsubscribes")),
    )
    with op.batch_alter_table("manireports_mail_unsubscribes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_manireports_mail_unsubscribes_company_email", ["companyid", "email"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_manireports_mail_unsubscribes_userid"), ["userid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manireports_mail_unsubscribes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manireports_mail_unsubscribes_userid"))
        batch_op.drop_index("ix_manireports_mail_unsubscribes_company_email")
    op.drop_table("manireports_mail_unsubscribes")
