"""The main menu: each area adds its entries; a viewer sees those their capabilities allow."""

from __future__ import annotations

from dataclasses import dataclass

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


def nav_for(viewer: Viewer | None) -> list[NavItem]:
    if viewer is None:
        return []
    return [item for item in NAV_ITEMS if item.visible_to(viewer)]


# Dashboards and reports read their registries (common/dashboards.py, common/reports/): each
# lists only what the viewer may open, so no report is named here.
add_nav_item("Dashboards", "dashboards.index", section="dashboards", group="Dashboards")
add_nav_item("Reports", "reports.index", section="reports")
add_nav_item("Audit log", "audit.index", caps.VIEW_AUDIT_LOG, group="Administration")
