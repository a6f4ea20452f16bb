"""Which columns of each table say whose data a row is: the one map tenant scoping reads.

Every Moodle table of schema.json and every ManiReports table is listed once: with its tenant
columns (company, user, course), with a `via` column that points at a row of a parent table
that is scoped itself (a quiz attempt belongs to its quiz's course), as `GLOBAL` (holds no
tenant data: role names, module types), or as forbidden (credentials and site configuration,
never read through a tenant-scoped query). `scoped()` refuses a table that is not in the map,
so a new table cannot be read around the scoping by accident.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TenantColumns:
    company: str | None = None
    user: str | None = None
    course: str | None = None
    # (column, parent table): the row is in scope when its parent row is.
    via: tuple[tuple[str, str], ...] = ()
    # App tables: rows with this company value (NULL or 0) are site-wide defaults that every
    # scope may read, e.g. the site's email templates and at-risk rules.
    site_rows: bool = False


GLOBAL = TenantColumns()

MOODLE_TABLES: dict[str, TenantColumns] = {
    # People and courses.
    "user": TenantColumns(user="id"),
    "user_info_data": TenantColumns(user="userid"),
    "user_info_field": GLOBAL,
    "user_lastaccess": TenantColumns(user="userid", course="courseid"),
    "course": TenantColumns(course="id"),
    "course_categories": GLOBAL,
    "course_sections": TenantColumns(course="course"),
    "course_modules": TenantColumns(course="course"),
    "modules": GLOBAL,
    "context": GLOBAL,
    "role": GLOBAL,
    "role_assignments": TenantColumns(user="userid"),
    "cohort": GLOBAL,
    "cohort_members": TenantColumns(user="userid"),
    "groups": TenantColumns(course="courseid"),
    "groups_members": TenantColumns(user="userid", via=(("groupid", "groups"),)),
    # Enrolment and completion.
    "enrol": TenantColumns(course="courseid"),
    "user_enrolments": TenantColumns(user="userid", via=(("enrolid", "enrol"),)),
    "course_completions": TenantColumns(user="userid", course="course"),
    "course_completion_criteria": TenantColumns(course="course"),
    "course_completion_crit_compl": TenantColumns(user="userid", course="course"),
    "course_modules_completion": TenantColumns(
        user="userid", via=(("coursemoduleid", "course_modules"),)
    ),
    "course_modules_viewed": TenantColumns(
        user="userid", via=(("coursemoduleid", "course_modules"),)
    ),
    # Grades, quizzes, SCORM.
    "grade_items": TenantColumns(course="courseid"),
    "grade_grades": TenantColumns(user="userid", via=(("itemid", "grade_items"),)),
    "quiz": TenantColumns(course="course"),
    "quiz_attempts": TenantColumns(user="userid", via=(("quiz", "quiz"),)),
    "quiz_grades": TenantColumns(user="userid", via=(("quiz", "quiz"),)),
    "scorm": TenantColumns(course="course"),
    "scorm_scoes": TenantColumns(via=(("scorm", "scorm"),)),
    "scorm_scoes_track": TenantColumns(user="userid", via=(("scormid", "scorm"),)),
    "scorm_attempt": TenantColumns(user="userid", via=(("scormid", "scorm"),)),
    "scorm_scoes_value": TenantColumns(via=(("attemptid", "scorm_attempt"),)),
    "scorm_element": GLOBAL,
    "logstore_standard_log": TenantColumns(user="userid", course="courseid"),
    # IOMAD.
    "company": TenantColumns(company="id"),
    "company_users": TenantColumns(company="companyid", user="userid"),
    "company_course": TenantColumns(company="companyid", course="courseid"),
    "company_shared_courses": TenantColumns(company="companyid", course="courseid"),
    "department": TenantColumns(company="company"),
    "iomad_courses": TenantColumns(course="courseid"),
    "companylicense": TenantColumns(company="companyid"),
    "companylicense_courses": TenantColumns(
        course="courseid", via=(("licenseid", "companylicense"),)
    ),
    "companylicense_users": TenantColumns(user="userid", via=(("licenseid", "companylicense"),)),
    "local_iomad_track": TenantColumns(company="companyid", user="userid", course="courseid"),
    "local_iomad_track_certs": TenantColumns(via=(("trackid", "local_iomad_track"),)),
    "email": TenantColumns(company="companyid", user="userid"),
}

# Site configuration and credentials: read by sign-in and token checks, never by a report.
FORBIDDEN_MOODLE_TABLES = frozenset(
    {
        "config",
        "config_plugins",
        "external_tokens",
        "external_services",
        "external_services_functions",
        "external_services_users",
        "sessions",
        "user_private_key",
    }
)

APP_TABLES: dict[str, TenantColumns] = {
    "manireports_audit_logs": TenantColumns(company="companyid"),
    "manireports_usertime_sessions": TenantColumns(user="userid", course="courseid"),
    "manireports_usertime_daily": TenantColumns(user="userid", course="courseid"),
    "manireports_scorm_summary": TenantColumns(user="userid", course="courseid"),
    "manireports_engagement": TenantColumns(user="userid", course="courseid"),
    "manireports_risk_scores": TenantColumns(user="userid", course="courseid"),
    "manireports_risk_acks": TenantColumns(user="userid", course="courseid"),
    "manireports_risk_rules": TenantColumns(company="companyid", site_rows=True),
    "manireports_cache_summary": TenantColumns(company="companyid"),
    "manireports_api_tokens": TenantColumns(company="companyid", user="userid"),
    "manireports_cloud_conf": TenantColumns(company="companyid"),
    "manireports_cloud_templates": TenantColumns(company="companyid", site_rows=True),
    "manireports_cloud_jobs": TenantColumns(company="companyid"),
    "manireports_cloud_recip": TenantColumns(via=(("jobid", "manireports_cloud_jobs"),)),
    "manireports_cloud_dead": TenantColumns(via=(("jobid", "manireports_cloud_jobs"),)),
    "manireports_mail_unsubscribes": TenantColumns(company="companyid"),
    # A run is its user's, in the company it was scoped to (None: site-wide, admins only).
    "manireports_report_runs": TenantColumns(company="companyid", user="userid"),
    # A schedule is its company's (None: site-wide, site admins only).
    "manireports_report_schedules": TenantColumns(company="companyid"),
    # A scheduled run's file is its schedule's company's (None: site-wide).
    "manireports_report_files": TenantColumns(company="companyid"),
    # A custom report is a definition (SQL, columns), not a tenant's data: who may run it is its
    # capabilities and, for company-safe ones, the `:companyid` bound to the viewer's company.
    "manireports_custom_reports": GLOBAL,
    # A dashboard is its company's, or its owner's when private; global ones have no company.
    # Visibility (global | company | private) is enforced in common/dashboardbuilder/store.py.
    "manireports_dashboards": TenantColumns(company="companyid", user="ownerid"),
}

# ManiReports' own bookkeeping: no tenant's data, read only by the services and sign-in.
INTERNAL_APP_TABLES = frozenset(
    {
        "alembic_version",
        "manireports_capability_grants",
        "manireports_analytics_state",
        "manireports_processed_msgs",
        "manireports_cloud_callbacks_seen",
        "manireports_web_sessions",
        "manireports_signin_counters",
        # Runs of the scheduler's tasks: shown to site admins only (/admin/scheduler).
        "manireports_task_runs",
        # The HR sync's settings, cursor and runs: site admins only (/admin/hr-sync).
        "manireports_hr_sync_config",
        "manireports_hr_sync_cursor",
        "manireports_hr_sync_runs",
        # Identity mapping and the unenroll policy: site-wide, site admins only.
        "lms_identity_map",
        "lms_identity_import",
        "lms_unenroll_policy",
        "lms_identity_parked",
        # The Classroom roster sync's settings and course mapping: site admins only.
        "manireports_classroom_config",
        "manireports_classroom_courses",
    }
)
