"""The API described as OpenAPI 3.1, generated from what the API serves.

Each registered report gets its own data, metadata and export paths with its declared
parameters (types, choices, defaults), its sortable columns and a row schema typed from its
columns; the dashboard path takes the dashboards' roles and filters. Errors everywhere have
one shape, `{error, field?, errors?}`. `/api/v1/openapi.json` serves the document and
`/api/v1/docs` renders the same document as a reference page, so neither can drift from the
registry. Adding a report adds its paths here with no edit.
"""

from __future__ import annotations

from typing import Any

from common.access.api_tokens import SCOPE_EMAIL_READ, SCOPE_EMAIL_WRITE, SCOPE_REPORTS_READ
from common.dashboards import DASHBOARDS, SHOWS
from common.ids import MAX_ID
from common.models.mail import JOB_TYPES
from common.reports import Param, Report, registered_reports
from common.reports.base import Column
from common.reports.export import FORMATS
from common.reports.params import SEARCH_MAX
from common.reports.rows import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from web.api.email_schema import MAX_RECIPIENTS

PREFIX = "/api/v1"
# PageRequest reads at most 9 digits for `page` and `page_size`.
MAX_PAGE_NUMBER = 999_999_999
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}

# The errors each kind of operation can answer, by status.
ERRORS = {
    400: ("BadRequest", "A parameter is malformed (`field` names it)."),
    401: ("Unauthorized", "No token, or one that is invalid, revoked or expired."),
    403: (
        "Forbidden",
        "The token lacks the scope, its user the capability, or the company "
        "asked for is not theirs (audited).",
    ),  # fmt: skip
    404: ("NotFound", "No such report, format, dashboard, company or job."),
    422: ("Unprocessable", "The body is well formed but breaks a rule (`field` names it)."),
    429: ("TooManyRequests", "The token made more requests this minute than the API allows."),
}
READ_ERRORS = (400, 401, 403, 404, 429)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


COLUMN_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "percent": {"type": "number", "description": "0–100"},
    "duration": {"type": "number", "description": "seconds"},
    "date": {"type": "string", "format": "date"},
    "datetime": {
        "type": "string",
        "format": "date-time",
        "description": "in the token user's Moodle timezone",
    },  # fmt: skip
}


def column_schema(column: Column) -> dict[str, Any]:
    return {**_nullable(COLUMN_SCHEMAS[column.kind]), "title": column.label}


def param_schema(param: Param) -> dict[str, Any]:
    if param.kind == "choice":
        schema: dict[str, Any] = {"type": "integer", "enum": list(param.choices)}
    elif param.kind == "id":
        schema = dict(ID_SCHEMA)
    elif param.kind == "date":
        schema = {"type": "string", "format": "date"}
    else:
        schema = {"type": "string", "maxLength": SEARCH_MAX}
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


COMPANY_PARAM = _query(
    "company", ID_SCHEMA,
    "The company to read (IOMAD); default: the token's company, else the user's own.",
)  # fmt: skip


def report_params(report: Report) -> list[dict[str, Any]]:
    return [_query(p.name, param_schema(p), p.help or p.label) for p in report.params]


def page_params(report: Report) -> list[dict[str, Any]]:
    sortable = [c.key for c in report.columns if c.sortable]
    page = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER}
    return [
        _query("page", {**page, "default": 1}, "Page number, from 1."),
        _query("page_size", {**page, "default": DEFAULT_PAGE_SIZE},
               f"Rows a page; more than {MAX_PAGE_SIZE} gives {MAX_PAGE_SIZE}."),
        _query("sort", {"type": "string", "enum": sortable, "default": report.default_sort},
               "The column to order by."),
        _query("dir", {"type": "string", "enum": ["asc", "desc"]},
               f"Order; default {report.default_direction} for the default column, else asc."),
    ]  # fmt: skip


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], errors: tuple[int, ...], ok_status: int = 200) -> dict[str, Any]:
    found: dict[str, Any] = {str(ok_status): ok}
    for status in errors:
        found[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    return found


def _operation(
    operation_id: str, summary: str, ok: dict[str, Any], *, tag: str,
    params: list[dict[str, Any]] | None = None, errors: tuple[int, ...] = READ_ERRORS,
    scope: str | None = SCOPE_REPORTS_READ, description: str = "",
) -> dict[str, Any]:  # fmt: skip
    operation: dict[str, Any] = {
        "operationId": operation_id, "summary": summary, "tags": [tag],
        "parameters": params or [], "responses": _responses(ok, errors),
    }  # fmt: skip
    if description:
        operation["description"] = description
    if scope is None:
        operation["security"] = []
    else:
        operation["x-scope"] = scope
    return operation


def report_paths(report: Report) -> dict[str, Any]:
    name = report.type_name
    base = f"{PREFIX}/reports/{name}"
    row_schema = {
        "type": "object",
        "properties": {c.key: column_schema(c) for c in report.columns},
        "required": [c.key for c in report.columns],
        "additionalProperties": True,  # `<drill>_id` values the links use
    }
    page_schema = {
        "allOf": [{"$ref": "#/components/schemas/ReportPage"}],
        "properties": {"report": {"const": name}, "rows": {"type": "array", "items": row_schema}},
    }
    filters = report_params(report)
    paths: dict[str, Any] = {
        base: {"get": _operation(
            f"report_{name}", report.title, _json(page_schema, "One page of rows."),
            tag="Reports", params=[COMPANY_PARAM, *filters, *page_params(report)],
            description=report.description,
        )},
        f"{base}/metadata": {"get": _operation(
            f"report_{name}_metadata", f"{report.title}: columns and parameters",
            _json({"$ref": "#/components/schemas/ReportMetadata"}, "The report described."),
            tag="Reports", params=[COMPANY_PARAM],
        )},
    }  # fmt: skip
    for fmt, export in FORMATS.items():
        media = export.media_type.split(";")[0]
        ok = {"description": f"Every row of the filtered, sorted view as {fmt.upper()}, "
                             "streamed as an attachment.",
              "content": {media: {"schema": {"type": "string"}}}}  # fmt: skip
        paths[f"{base}/export.{fmt}"] = {"get": _operation(
            f"report_{name}_export_{fmt}", f"{report.title} as {fmt.upper()}", ok,
            tag="Exports", params=[COMPANY_PARAM, *filters, *page_params(report)[2:]],
        )}  # fmt: skip
    return paths


CUSTOM_DESCRIPTION = (
    "A custom report an administrator saved (`custom_<id>`; `GET /api/v1/reports` lists those "
    "the token's user may run). Its columns and parameters are its own: `…/metadata` lists them "
    "with their types; give each parameter as a query parameter of its name. `companyid` is "
    "bound to the caller's company (another company is refused with 403)."
)


def custom_report_paths() -> dict[str, Any]:
    """Stored reports, described once: their names and parameters are the site's own, told to
    a token's user by the listing and each report's metadata, not to this public document."""
    base = f"{PREFIX}/reports/custom_{{id}}"
    report_id = {"name": "id", "in": "path", "required": True, "schema": ID_SCHEMA,
                 "description": "The stored report's id."}  # fmt: skip
    page = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER}
    paging = [
        _query("page", {**page, "default": 1}, "Page number, from 1."),
        _query("page_size", {**page, "default": DEFAULT_PAGE_SIZE},
               f"Rows a page; more than {MAX_PAGE_SIZE} gives {MAX_PAGE_SIZE}."),
    ]  # fmt: skip
    ordering = [
        _query("sort", {"type": "string", "maxLength": SEARCH_MAX},
               "A column key (see the metadata); default the first column."),
        _query("dir", {"type": "string", "enum": ["asc", "desc"]}, "Order; default asc."),
    ]  # fmt: skip
    paths: dict[str, Any] = {
        base: {"get": _operation(
            "custom_report", "A custom report",
            _json({"$ref": "#/components/schemas/ReportPage"}, "One page of rows."),
            tag="Reports", params=[report_id, COMPANY_PARAM, *paging, *ordering],
            description=CUSTOM_DESCRIPTION,
        )},
        f"{base}/metadata": {"get": _operation(
            "custom_report_metadata", "A custom report: columns and parameters",
            _json({"$ref": "#/components/schemas/ReportMetadata"}, "The report described."),
            tag="Reports", params=[report_id, COMPANY_PARAM],
        )},
    }  # fmt: skip
    for fmt, export in FORMATS.items():
        media = export.media_type.split(";")[0]
        ok = {"description": f"Every row of the view (at most 10,000) as {fmt.upper()}.",
              "content": {media: {"schema": {"type": "string"}}}}  # fmt: skip
        paths[f"{base}/export.{fmt}"] = {"get": _operation(
            f"custom_report_export_{fmt}", f"A custom report as {fmt.upper()}", ok,
            tag="Exports", params=[report_id, COMPANY_PARAM, *ordering],
        )}  # fmt: skip
    return paths


def dashboard_params() -> list[dict[str, Any]]:
    """`role`, `company` and every filter a dashboard offers, typed as the reports declare it."""
    declared = {p.name: p for r in registered_reports() for p in r.params}
    names = sorted({f for d in DASHBOARDS for f in d.filters}, key=str)
    filters = [_query(n, param_schema(declared[n]), declared[n].help or declared[n].label)
               for n in names if n in declared]  # fmt: skip
    roles = {"type": "string", "enum": [d.role for d in DASHBOARDS]}
    return [_query("role", roles, "Which of the caller's dashboards; default: their first."),
            COMPANY_PARAM, *filters]  # fmt: skip


def _schemas() -> dict[str, Any]:
    string, integer = {"type": "string"}, {"type": "integer"}
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    obj = {"type": "object"}
    column = {
        "type": "object", "required": ["key", "label", "type", "sortable"],
        "properties": {"key": string, "label": string, "type": {"enum": list(COLUMN_SCHEMAS)},
                       "kind": {"enum": list(COLUMN_SCHEMAS)}, "sortable": {"type": "boolean"}},
    }  # fmt: skip
    kpi = {"type": "object", "required": ["key", "label", "value"],
           "properties": {"key": string, "label": string, "value": {}, "kind": string}}  # fmt: skip
    sort = {"type": "object", "required": ["key", "direction"],
            "properties": {"key": string, "direction": {"enum": ["asc", "desc"]}}}  # fmt: skip
    label_value = {"type": "object", "required": ["label", "value"],
                   "properties": {"label": string, "value": string}}  # fmt: skip
    return {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What went wrong, for people."},
                "field": {"type": "string", "description": "The parameter or field at fault."},
                "errors": {"type": "array", "description": "Every field at fault, when several.",
                           "items": {"type": "object", "required": ["field", "error"],
                                     "properties": {"field": string, "error": string}}},
            },
        },
        "Column": column,
        "Kpi": kpi,
        "Sort": sort,
        "Filter": label_value,
        "ReportSummary": {
            "type": "object", "required": ["name", "title", "description", "url", "metadata_url"],
            "properties": {"name": string, "title": string, "description": string,
                           "url": string, "metadata_url": string},
        },
        "ReportPage": {
            "type": "object",
            "required": ["report", "title", "columns", "rows", "chart", "kpis", "params",
                         "pagination", "sort", "filters"],
            "properties": {
                "report": string, "title": string,
                "columns": {"type": "array", "items": {"$ref": "#/components/schemas/Column"}},
                "rows": {"type": "array", "items": obj},
                "chart": {**obj, "description": "{type, labels, series, drill?}; {} if none"},
                "kpis": {"type": "array", "items": {"$ref": "#/components/schemas/Kpi"}},
                "params": {**obj, "description": "The parameters applied, parsed."},
                "pagination": {
                    "type": "object", "required": ["page", "page_size", "total", "pages"],
                    "properties": {"page": integer, "page_size": integer, "total": integer,
                                   "pages": integer},
                },
                "sort": {"$ref": "#/components/schemas/Sort"},
                "filters": {"type": "array", "items": {"$ref": "#/components/schemas/Filter"}},
            },
        },
        "ReportMetadata": {
            "type": "object",
            "required": ["name", "title", "columns", "parameters", "sort", "page_size"],
            "properties": {
                "name": string, "title": string, "description": string,
                "columns": {"type": "array", "items": {"$ref": "#/components/schemas/Column"}},
                "parameters": {"type": "array", "items": {
                    "type": "object", "required": ["name", "label", "type"],
                    "properties": {"name": string, "label": string,
                                   "type": {"enum": ["choice", "id", "date", "text"]},
                                   "default": {}, "help": string, "choices": {"type": "array"}},
                }},
                "sort": {"type": "object", "properties": {
                    "default": string, "direction": {"enum": ["asc", "desc"]},
                    "sortable": {"type": "array", "items": string}}},
                "page_size": {"type": "object", "properties": {"default": integer,
                                                               "max": integer}},
                "formats": {"type": "array", "items": string},
            },
        },
        "Dashboard": {
            "type": "object", "required": ["dashboard", "title", "filters", "widgets"],
            "properties": {
                "dashboard": {"enum": [d.role for d in DASHBOARDS]}, "title": string,
                "filters": {"type": "array", "items": {"$ref": "#/components/schemas/Filter"}},
                "widgets": {"type": "array", "items": {
                    "type": "object", "required": ["key", "title", "report", "show"],
                    "properties": {
                        "key": string, "title": string, "report": string,
                        "show": {"enum": list(SHOWS)},
                        "kpis": {"type": "array", "items": {"$ref": "#/components/schemas/Kpi"}},
                        "chart": obj,
                        "columns": {"type": "array",
                                    "items": {"$ref": "#/components/schemas/Column"}},
                        "rows": {"type": "array", "items": obj},
                        "total": integer,
                        "sort": {"$ref": "#/components/schemas/Sort"},
                    },
                }},
            },
        },
        "EmailJob": {
            "type": "object",
            "required": ["id", "company", "type", "status", "recipients_total", "progress_pct"],
            "properties": {
                "id": integer, "company": integer, "type": {"enum": list(JOB_TYPES)},
                "status": string, "source": string, "recipients_total": integer,
                "emails_sent": integer, "emails_failed": integer, "chunks_total": integer,
                "chunks_dead": integer, "progress_pct": {"type": "number"},
                "rate_per_s": {"type": ["number", "null"], "description":
                               "Messages a second over the last 10 s, as the job page shows"},
                "eta_s": {"type": ["number", "null"], "description":
                          "Seconds left at that rate; null when finished or not sending"},
                "recipients_by_status": {"type": "object",
                                         "additionalProperties": integer},
                "last_error": {"type": ["string", "null"]},
                "timecreated": nullable_time, "timestarted": nullable_time,
                "timecompleted": nullable_time,
                "dispatched": {"type": "boolean", "description": "On creation only."},
            },
        },
        "EmailJobRequest": {
            "type": "object", "required": ["type", "recipients"], "additionalProperties": False,
            "properties": {
                "type": {"enum": list(JOB_TYPES)},
                "subject": {"type": "string", "description": "Mustache; with html, or neither "
                                                              "for the company's template"},
                "html": {"type": "string"},
                "text": {"type": "string"},
                "recipients": {"type": "array", "minItems": 1, "maxItems": MAX_RECIPIENTS,
                               "items": {
                                   "type": "object", "required": ["email"],
                                   "additionalProperties": False,
                                   "properties": {"email": {"type": "string", "format": "email"},
                                                  "data": obj, "userid": integer}}},
                "variables": obj,
                "company": {"type": "integer", "minimum": 0},
            },
        },
    }  # fmt: skip


def _error_responses() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for status, (name, description) in ERRORS.items():
        response = _json(ERROR_REF, description)
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {
                "description": 'The Bearer challenge (RFC 6750), with error="invalid_token" '
                               "when a token was sent.",
                "schema": {"type": "string"}}}  # fmt: skip
        if status == 429:
            response["headers"] = {"Retry-After": {
                "description": "Seconds until the token's window ends.", "required": True,
                "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip
        found[name] = response
    return found


def openapi_document() -> dict[str, Any]:
    job_ref = {"type": "object", "required": ["job"],
               "properties": {"job": {"$ref": "#/components/schemas/EmailJob"}}}  # fmt: skip
    paths: dict[str, Any] = {
        f"{PREFIX}/reports": {"get": _operation(
            "list_reports", "The reports the token's user may run",
            _json({"type": "object", "required": ["reports"], "properties": {"reports": {
                "type": "array", "items": {"$ref": "#/components/schemas/ReportSummary"}}}},
                "The reports, in registry order."),
            tag="Reports", params=[COMPANY_PARAM], errors=(400, 401, 403, 404, 429),
        )},
    }  # fmt: skip
    for report in registered_reports():
        paths.update(report_paths(report))
    paths.update(custom_report_paths())
    paths[f"{PREFIX}/dashboard"] = {"get": _operation(
        "dashboard", "The caller's role dashboard: every widget under shared filters",
        _json({"$ref": "#/components/schemas/Dashboard"}, "The dashboard's widgets."),
        tag="Dashboards", params=dashboard_params(),
        description="The first of the caller's dashboards (admin, manager, teacher, student, "
                    "as their capabilities allow), or `role`: another of theirs (404 if not).",
    )}  # fmt: skip
    create_job = _operation(
        "create_email_job", "Queue an email job", _json(job_ref, "The job; `Location` is its URL."),
        tag="Email", params=[COMPANY_PARAM], errors=(400, 401, 403, 404, 422, 429),
        scope=SCOPE_EMAIL_WRITE,
        description="Needs the capability to manage email offload in the company.",
    )  # fmt: skip
    create_job["responses"]["201"] = create_job["responses"].pop("200")
    create_job["requestBody"] = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/EmailJobRequest"}}}}  # fmt: skip
    paths[f"{PREFIX}/email/jobs"] = {"post": create_job}
    paths[f"{PREFIX}/email/jobs/{{job_id}}"] = {"get": _operation(
        "email_job", "An email job's progress", _json(job_ref, "The job."), tag="Email",
        params=[{"name": "job_id", "in": "path", "required": True, "schema": ID_SCHEMA},
                COMPANY_PARAM],
        scope=SCOPE_EMAIL_READ,
    )}  # fmt: skip
    paths[f"{PREFIX}/openapi.json"] = {"get": _operation(
        "openapi", "This document", _json({"type": "object"}, "OpenAPI 3.1."),
        tag="Reference", errors=(), scope=None,
    )}  # fmt: skip
    paths[f"{PREFIX}/docs"] = {"get": _operation(
        "docs", "This document as a page",
        {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}},
        tag="Reference", errors=(), scope=None,
    )}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ManiReports API",
            "version": "1",
            "description": (
                "Prebuilt reports, their exports, role dashboards and email jobs, for a bearer "
                "token. Send `Authorization: Bearer <token>`: a ManiReports token (`mrt_…`, "
                "issued on the API tokens page) with its scopes, or a Moodle web-service token "
                f"(read only: `{SCOPE_REPORTS_READ}`). Either acts as its user: their "
                "capabilities and companies decide what it sees. Tokens in the URL "
                "(`?wstoken=`) are refused. Each token may make a limited number of requests "
                "a minute (429 with `Retry-After` past it). Errors are JSON "
                "`{error, field?, errors?}`."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in ("Reports", "Exports", "Dashboards", "Email", "Reference")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A ManiReports API token (mrt_…) or a Moodle web-service token.",
            }},
            "schemas": _schemas(),
            "responses": _error_responses(),
        },
    }  # fmt: skip


def _type_text(schema: dict[str, Any]) -> str:
    """A parameter's schema as a reader wants it: `integer (30, 90; default 30)`."""
    kind = schema.get("type", "string")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if schema.get("format"):
        text += f" ({schema['format']})"
    details = []
    if "enum" in schema:
        details.append(", ".join(str(v) for v in schema["enum"]))
    elif "minimum" in schema and schema.get("maximum") not in (None, MAX_ID):
        details.append(f"{schema['minimum']}–{schema['maximum']}")
    elif "minimum" in schema:
        details.append(f"from {schema['minimum']}")
    if "maxLength" in schema:
        details.append(f"at most {schema['maxLength']} characters")
    if "default" in schema:
        details.append(f"default {schema['default']}")
    return text + (f" ({'; '.join(details)})" if details else "")


def reference(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's operations flattened for the reference page: method, path, scope,
    parameters with readable types, and each response's status, description and schema name."""
    responses = doc["components"]["responses"]
    operations = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            shown = []
            for status, response in op["responses"].items():
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                content = response.get("content", {})
                media = ", ".join(content) or "—"
                schemas = [c.get("schema", {}) for c in content.values()]
                ref = next((s["$ref"] for s in schemas if "$ref" in s), None)
                if ref is None:
                    ref = next((s["allOf"][0]["$ref"] for s in schemas if "allOf" in s), None)
                shown.append({"status": status, "description": response["description"],
                              "media": media, "schema": ref.rsplit("/", 1)[1] if ref else "",
                              "headers": list(response.get("headers", {}))})  # fmt: skip
            operations.append({
                "id": op["operationId"], "method": method.upper(), "path": path,
                "summary": op["summary"], "description": op.get("description", ""),
                "tag": op["tags"][0], "scope": op.get("x-scope"),
                "public": op.get("security") == [],
                "parameters": [{"name": p["name"], "in": p["in"], "required": p["required"],
                                "type": _type_text(p["schema"]),
                                "description": p.get("description", "")}
                               for p in op["parameters"]],
                "body": "requestBody" in op,
                "responses": shown,
            })  # fmt: skip
    return operations
