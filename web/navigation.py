"""The main menu: each area adds its entries to a group; a viewer sees those they can use.

An entry shows when the viewer holds one of its capabilities *and* can open its page in the
company chosen in the header: a view declared `Tenancy.MANAGE` needs a company the viewer
manages (a plain member of the chosen company does not see "Email offload"), `Tenancy.SITE`
a site admin. The menu is read from each view's own declaration, so it cannot drift from the
guard that would otherwise answer 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from common.access import capabilities as caps
from common.access.viewer import Viewer


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    capabilities: tuple[str, ...] = ()
    # Every endpoint of this blueprint is "here" (a report page under Reports).
    section: str | None = None
    # The menu group it sits in: one of GROUPS.
    group: str = "Reports"

    def current(self, endpoint: str | None) -> bool:
        if endpoint is None:
            return False
        return endpoint == self.endpoint or (
            self.section is not None and endpoint.startswith(self.section + ".")
        )

    def visible_to(self, viewer: Viewer) -> bool:
        return not self.capabilities or viewer.can_any(self.capabilities)


NAV_ITEMS: list[NavItem] = []

GROUPS = ("Dashboards", "Reports", "Analytics", "Email", "Administration")


def add_nav_item(
    label: str,
    endpoint: str,
    *capabilities: str,
    section: str | None = None,
    group: str = "Reports",
) -> None:
    if group not in GROUPS:
        raise ValueError(f"unknown menu group {group!r}: one of {', '.join(GROUPS)}")
    NAV_ITEMS.append(NavItem(label, endpoint, capabilities, section, group))


def nav_for(viewer: Viewer | None, company_id: int | None = None) -> list[NavItem]:
    """The entries ``viewer`` may open, in the company ``company_id`` (None: none chosen)."""
    if viewer is None:
        return []
    return [
        item
        for item in NAV_ITEMS
        if item.visible_to(viewer) and usable_in_company(viewer, item.endpoint, company_id)
    ]


@dataclass(frozen=True)
class NavGroup:
    label: str
    items: tuple[NavItem, ...]

    @property
    def slug(self) -> str:
        return self.label.lower().replace(" ", "-")

    def current(self, endpoint: str | None) -> bool:
        return any(item.current(endpoint) for item in self.items)


def nav_groups(viewer: Viewer | None, company_id: int | None = None) -> list[NavGroup]:
    """The menu as groups in GROUPS order, empty groups left out."""
    items = nav_for(viewer, company_id)
    groups = [NavGroup(g, tuple(i for i in items if i.group == g)) for g in GROUPS]
    return [group for group in groups if group.items]


def usable_in_company(viewer: Viewer, endpoint: str, company_id: int | None) -> bool:
    """Whether the view behind ``endpoint`` would let ``viewer`` in, in ``company_id``: the
    same rules as `scope_for`'s MANAGE and `signed_in`'s SITE, read from the view itself."""
    view = current_app.view_functions.get(endpoint)
    if view is None:
        return False
    required = getattr(view, "required_capabilities", ())
    if required and not viewer.can_any(required):
        return False
    tenancy = getattr(view, "tenancy", None)
    if tenancy == "site":
        return viewer.is_site_admin
    if tenancy == "manage" and not viewer.is_site_admin:
        managed = viewer.managed_company_ids
        if company_id is None or not viewer.has_iomad:
            return bool(managed)
        return company_id in managed
    return True


# Dashboards and reports read their registries (common/dashboards.py, common/reports/): each
# lists only what the viewer may open, so no report is named here.
add_nav_item("Dashboards", "dashboards.index", section="dashboards", group="Dashboards")
add_nav_item("Reports", "reports.index", section="reports")
add_nav_item("Report builder", "reportbuilder.new", caps.CUSTOM_REPORTS, section="reportbuilder")
add_nav_item("Audit log", "audit.index", caps.VIEW_AUDIT_LOG, group="Administration")
