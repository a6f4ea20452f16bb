"""The plugin's capability names, and which Moodle/IOMAD roles carry them by default.

Capabilities come from the viewer's Moodle roles (site admin, IOMAD manager type, course
roles) plus explicit grants stored in the app DB (`manireports_capability_grants`).
"""

from __future__ import annotations

PREFIX = "local/manireports:"

VIEW_ADMIN_DASHBOARD = PREFIX + "viewadmindashboard"
VIEW_MANAGER_DASHBOARD = PREFIX + "viewmanagerdashboard"
VIEW_TEACHER_DASHBOARD = PREFIX + "viewteacherdashboard"
VIEW_STUDENT_DASHBOARD = PREFIX + "viewstudentdashboard"
MANAGE_REPORTS = PREFIX + "managereports"
SCHEDULE = PREFIX + "schedule"
CUSTOM_REPORTS = PREFIX + "customreports"
MANAGE_EMAIL_OFFLOAD = PREFIX + "manageemailoffload"
VIEW_AUDIT_LOG = PREFIX + "viewauditlog"

ALL_CAPABILITIES: frozenset[str] = frozenset(
    {
        VIEW_ADMIN_DASHBOARD,
        VIEW_MANAGER_DASHBOARD,
        VIEW_TEACHER_DASHBOARD,
        VIEW_STUDENT_DASHBOARD,
        MANAGE_REPORTS,
        SCHEDULE,
        CUSTOM_REPORTS,
        MANAGE_EMAIL_OFFLOAD,
        VIEW_AUDIT_LOG,
    }
)

# IOMAD company_users.managertype (NOTES.md §8).
MANAGERTYPE_COMPANY_MANAGER = 1
MANAGERTYPE_DEPARTMENT_MANAGER = 2
MANAGERTYPE_REPORTER = 4

ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    "siteadmin": ALL_CAPABILITIES,
    "companymanager": frozenset(
        {VIEW_MANAGER_DASHBOARD, MANAGE_REPORTS, SCHEDULE, MANAGE_EMAIL_OFFLOAD}
    ),
    "departmentmanager": frozenset({VIEW_MANAGER_DASHBOARD, SCHEDULE}),
    "companyreporter": frozenset({VIEW_MANAGER_DASHBOARD}),
    "teacher": frozenset({VIEW_TEACHER_DASHBOARD}),
    "student": frozenset({VIEW_STUDENT_DASHBOARD}),
}

MANAGERTYPE_ROLES = {
    MANAGERTYPE_COMPANY_MANAGER: "companymanager",
    MANAGERTYPE_DEPARTMENT_MANAGER: "departmentmanager",
    MANAGERTYPE_REPORTER: "companyreporter",
}

TEACHER_ROLE_SHORTNAMES = ("editingteacher", "teacher")
STUDENT_ROLE_SHORTNAMES = ("student",)
