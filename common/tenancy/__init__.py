"""Tenancy by construction: which companies, departments, courses and people a viewer may
see or act on, decided once (`scope_for`) and applied to every query (`scoped`) and every row
loaded by id (`load_scoped`, `load_job`, …). See each module's docstring."""

from common.tenancy.loaders import load_job, load_learner, load_scoped, load_token
from common.tenancy.policy import (
    MANAGE,
    VIEW,
    Action,
    company_choices,
    default_company,
    require_company,
    scope_for,
    sees_every_company,
)
from common.tenancy.scope import SITE, NotFound, TenantScope, TenantViolation, id_list
from common.tenancy.scoped import UnscopedTable, VisibleIds, scoped, visible_ids

__all__ = [
    "MANAGE",
    "SITE",
    "VIEW",
    "Action",
    "NotFound",
    "TenantScope",
    "TenantViolation",
    "UnscopedTable",
    "VisibleIds",
    "company_choices",
    "default_company",
    "id_list",
    "load_job",
    "load_learner",
    "load_scoped",
    "load_token",
    "require_company",
    "scope_for",
    "scoped",
    "sees_every_company",
    "visible_ids",
]
