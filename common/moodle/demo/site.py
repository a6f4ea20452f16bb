"""What a fresh Moodle (or IOMAD) install puts in its database before anyone uses it.

Shared by the demo seed and the test factory: config (siteadmins, siteguest, versions), the
eight standard roles in install order, the activity modules, the site course (id 1).
"""

from __future__ import annotations

from typing import Any

from common.moodle.demo.model import ADMIN_ID, GUEST_ID, SITE_COURSE_ID
from common.moodle.tables import ScormLayout

# (shortname, archetype) in install order: ids 1..8 on a fresh site (NOTES.md §6).
STANDARD_ROLES = (
    ("manager", "manager"),
    ("coursecreator", "coursecreator"),
    ("editingteacher", "editingteacher"),
    ("teacher", "teacher"),
    ("student", "student"),
    ("guest", "guest"),
    ("user", "user"),
    ("frontpage", "frontpage"),
)
# IOMAD's own roles are custom roles (no archetype); readers find them by shortname.
IOMAD_ROLES = ("companymanager", "companydepartmentmanager")

# Standard activity modules of Moodle 4.x, installed in this order.
MODULE_NAMES = (
    "assign", "bigbluebuttonbn", "book", "chat", "choice", "data", "feedback", "folder", "forum",
    "glossary", "h5pactivity", "imscp", "label", "lesson", "lti", "page", "qbank", "quiz",
    "resource", "scorm", "survey", "url", "wiki", "workshop",
)  # fmt: skip

# (core $version, release, mod_scorm/mod_quiz plugin version) per SCORM layout and IOMAD.
_RELEASES: dict[tuple[ScormLayout, bool], tuple[str, str, str]] = {
    ("attempt", False): ("2024100705.01", "4.5.5+ (Build: 20250613)", "2024100700"),
    ("attempt", True): ("2024042205.00", "4.4.5 (Build: 20241209)", "2024042200"),
    ("track", False): ("2022112822.00", "4.1.22 (Build: 20251208)", "2022112800"),
    ("track", True): ("2022112822.00", "4.1.22 (Build: 20251208)", "2022112800"),
}


def role_ids(iomad: bool) -> dict[str, int]:
    shortnames = [shortname for shortname, _ in STANDARD_ROLES]
    if iomad:
        shortnames += IOMAD_ROLES
    return {shortname: role_id for role_id, shortname in enumerate(shortnames, start=1)}


def role_rows(iomad: bool) -> list[dict[str, Any]]:
    archetypes = dict(STANDARD_ROLES)
    return [
        {
            "id": role_id,
            # Standard roles keep name '' and take their display name from the language pack.
            "name": "" if shortname in archetypes else _IOMAD_ROLE_NAMES[shortname],
            "shortname": shortname,
            "description": "",
            "sortorder": role_id,
            "archetype": archetypes.get(shortname, ""),
        }
        for shortname, role_id in role_ids(iomad).items()
    ]


_IOMAD_ROLE_NAMES = {
    "companymanager": "Company Manager",
    "companydepartmentmanager": "Company Department Manager",
}


def module_ids() -> dict[str, int]:
    return {name: module_id for module_id, name in enumerate(MODULE_NAMES, start=1)}


def module_rows() -> list[dict[str, Any]]:
    return [
        {"id": module_id, "name": name, "cron": 0, "lastcron": 0, "search": "", "visible": 1}
        for name, module_id in module_ids().items()
    ]


def config_rows(*, scorm_layout: ScormLayout, iomad: bool) -> list[dict[str, Any]]:
    version, release, _ = _RELEASES[(scorm_layout, iomad)]
    roles = role_ids(iomad)
    values = {
        "version": version,
        "release": release,
        "siteadmins": str(ADMIN_ID),
        "siteguest": str(GUEST_ID),
        "mnet_localhost_id": "1",
        "rolesactive": "1",
        "lang": "en",
        "timezone": "Europe/London",
        "forcetimezone": "99",
        "enablecompletion": "1",
        "auth": "email,ldap",
        "defaultuserroleid": str(roles["user"]),
        "guestroleid": str(roles["guest"]),
        "notloggedinroleid": str(roles["guest"]),
        "defaultfrontpageroleid": str(roles["frontpage"]),
        "creatornewroleid": str(roles["editingteacher"]),
        "gradebookroles": str(roles["student"]),
    }
    return [
        {"id": row_id, "name": name, "value": value}
        for row_id, (name, value) in enumerate(values.items(), start=1)
    ]


def config_plugin_rows(*, scorm_layout: ScormLayout, iomad: bool) -> list[dict[str, Any]]:
    plugin_version = _RELEASES[(scorm_layout, iomad)][2]
    values = [
        ("tool_log", "enabled_stores", "logstore_standard"),
        # New installs log `other` as JSON; older sites may still hold serialize() text.
        ("logstore_standard", "jsonformat", "1"),
        ("logstore_standard", "buffersize", "50"),
        ("logstore_standard", "loglifetime", "0"),
        ("mod_quiz", "version", plugin_version),
        ("mod_scorm", "version", plugin_version),
    ]
    if iomad:
        values.append(("local_iomad", "version", "2024090401"))
    return [
        {"id": row_id, "plugin": plugin, "name": name, "value": value}
        for row_id, (plugin, name, value) in enumerate(values, start=1)
    ]


def site_course_row(*, fullname: str, shortname: str, installed_at: int) -> dict[str, Any]:
    """The front page: course id 1, format `site`, category 0 (SITEID)."""
    return {
        "id": SITE_COURSE_ID,
        "category": 0,
        "sortorder": 1,
        "fullname": fullname,
        "shortname": shortname,
        "summary": "",
        "format": "site",
        "newsitems": 3,
        "startdate": 0,
        "visible": 1,
        "timecreated": installed_at,
        "timemodified": installed_at,
    }
