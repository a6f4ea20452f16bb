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

    def visible_to(self, viewer: Viewer) -> bool:
        return not self.capabilities or viewer.can_any(self.capabilities)


NAV_ITEMS: list[NavItem] = []


def add_nav_item(label: str, endpoint: str, *capabilities: str) -> None:
    NAV_ITEMS.append(NavItem(label, endpoint, capabilities))


def nav_for(viewer: Viewer | None) -> list[NavItem]:
    if viewer is None:
        return []
    return [item for item in NAV_ITEMS if item.visible_to(viewer)]


add_nav_item("Dashboards", "dashboards.index")
add_nav_item(
    "Course completion",
    "dashboards.completion",
    caps.VIEW_ADMIN_DASHBOARD,
    caps.VIEW_MANAGER_DASHBOARD,
    caps.VIEW_TEACHER_DASHBOARD,
)
add_nav_item("Audit log", "audit.index", caps.VIEW_AUDIT_LOG)
