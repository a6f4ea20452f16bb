"""A stored custom report on the two-company site: the admin who saves it, and its SQL."""

from __future__ import annotations

from common.access.capabilities import ALL_CAPABILITIES, ROLE_CAPABILITIES
from common.access.viewer import Viewer

# Learners of one company with the time their account was made; `:companyid` limits them. The
# "quoted" alias reads alike in the MySQL and PostgreSQL dialects a site's SQL is checked in.
COMPANY_LEARNERS = """
SELECT u.username, u.firstname AS "First name", u.timecreated
FROM {user} u
JOIN {company_users} cu ON cu.userid = u.id
WHERE cu.companyid = :companyid AND u.deleted = 0 AND u.username LIKE :pattern
"""


def admin_viewer(user_id: int = 2) -> Viewer:
    return Viewer(user_id=user_id, username="admin", fullname="Admin User", timezone="99",
                  is_site_admin=True, has_iomad=True, roles=frozenset({"siteadmin"}),
                  capabilities=ALL_CAPABILITIES)  # fmt: skip


def manager_viewer(user_id: int) -> Viewer:
    return Viewer(user_id=user_id, username="mgr", fullname="A Manager", timezone="99",
                  is_site_admin=False, has_iomad=True, roles=frozenset({"companymanager"}),
                  capabilities=ROLE_CAPABILITIES["companymanager"])  # fmt: skip
