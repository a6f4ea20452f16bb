"""A local stand-in for BambooHR's REST API, the part an HR sync reads, answering as it does.

Sources: BambooHR's own OpenAPI description (github.com/BambooHR/bhr-api-php, specs/public.yaml:
operations get-changed-employee-ids, get-employees-directory, get-employee) and
documentation.bamboohr.com (docs/api-details, docs/planned-changes-to-the-api).

- Both base URL forms work: ``{base_url}/api/gateway.php/{domain}`` (``gateway_url``) and
  ``{base_url}/api`` (``api_url``), the company then taken from a ``Host: {domain}.bamboohr.
  localhost`` (or ``.bamboohr.com``) header; a request to ``api_url`` with the plain
  127.0.0.1 host is the one company this server holds.
- HTTP Basic auth with the API key as the user name and anything (clients send "x") as the
  password; a missing or wrong key is 401 with an empty body and ``X-BambooHR-Error-Message``.
- ``Accept: application/json`` gives JSON; anything else gives XML (BambooHR's default).
- ``GET v1/employees/changed?since=ISO8601[&type=inserted|updated|deleted|all]``:
  ``{"latest": ts, "employees": {"<id>": {"id", "action", "lastChanged"}}}``; an empty feed
  is PHP's empty array, ``"employees": []``, unless ``empty_feed_as_object`` is set (``{}``).
  A missing or unparsable ``since`` or an unknown ``type`` is 400.
- ``GET v1/employees/directory``: ``{"fields": [...], "employees": [...]}``, active
  employees only (a terminated employee leaves it); an empty directory is 404.
- ``GET v1/employees/{id}?fields=a,b``: ``{"id": "<id>", "a": ..., "b": ...}``; unknown or
  deleted employees are 404. Empty dates read ``0000-00-00`` as BambooHR writes them.
- Rate limiting is 429 with ``Retry-After`` (BambooHR's answer since 16 September 2026; 503
  before that, still used when the API is unavailable); faults can also leave the header out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from werkzeug.datastructures import Authorization
from werkzeug.wrappers import Request, Response

from tests.fakes.local_http import LocalWsgiServer

EMPTY_DATE = "0000-00-00"
DIRECTORY_FIELDS = [
    {"id": "displayName", "type": "text", "name": "Display name"},
    {"id": "firstName", "type": "text", "name": "First name"},
    {"id": "lastName", "type": "text", "name": "Last name"},
    {"id": "preferredName", "type": "text", "name": "Preferred name"},
    {"id": "jobTitle", "type": "list", "name": "Job title"},
    {"id": "workPhone", "type": "text", "name": "Work Phone"},
    {"id": "mobilePhone", "type": "text", "name": "Mobile Phone"},
    {"id": "workEmail", "type": "email", "name": "Work Email"},
    {"id": "department", "type": "list", "name": "Department"},
    {"id": "location", "type": "list", "name": "Location"},
    {"id": "division", "type": "list", "name": "Division"},
    {"id": "supervisor", "type": "text", "name": "Supervisor name"},
    {"id": "photoUploaded", "type": "bool", "name": "Employee has uploaded a photo"},
    {"id": "photoUrl", "type": "url", "name": "Employee photo"},
    {"id": "canUploadPhoto", "type": "bool", "name": "Employee can upload a photo"},
]
CHANGE_TYPES = {"inserted": "Inserted", "updated": "Updated", "deleted": "Deleted"}


def bamboo_timestamp(moment: datetime) -> str:
    """BambooHR's spelling: seconds, explicit offset, ``2026-12-01T14:03:11+00:00``."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass
class BambooEmployee:
    id: str
    fields: dict[str, Any]
    created: datetime
    last_changed: datetime
    deleted: bool = False

    @property
    def active(self) -> bool:
        return self.fields.get("status") == "Active"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # as sent, e.g. /api/gateway.php/acme/v1/employees/42
    route: str  # the API path below the base URL, e.g. /v1/employees/42
    query: dict[str, str]
    headers: dict[str, str]
    status: int


@dataclass
class _Fault:
    times: int
    respond: Callable[[], Response]
    path_contains: str | None = None
    after_requests: int = 0


@dataclass
class _FaultQueue:
    faults: list[_Fault] = field(default_factory=list)

    def take(self, route: str) -> Response | None:
        """The first queued fault matching ``route``, if it is due; faults are used in order."""
        for fault in self.faults:
            if fault.path_contains is not None and fault.path_contains not in route:
                continue
            if fault.after_requests:
                fault.after_requests -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            return fault.respond()
        return None


class BambooHrServer:
    def __init__(self, api_key: str = "bamboo-test-key", company_domain: str = "acme") -> None:
        self.api_key = api_key
        self.company_domain = company_domain
        self.empty_feed_as_object = False
        self._lock = threading.Lock()
        self._employees: dict[str, BambooEmployee] = {}
        self._next_id = 1
        self._faults = _FaultQueue()
        self._log: list[RecordedRequest] = []
        self._http = LocalWsgiServer(self._wsgi)

    # -- lifecycle and addresses --------------------------------------------------------

    def start(self) -> BambooHrServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def gateway_url(self) -> str:
        """``https://api.bamboohr.com/api/gateway.php/{domain}``, served here."""
        return f"{self.base_url}/api/gateway.php/{self.company_domain}"

    @property
    def api_url(self) -> str:
        """``https://{domain}.bamboohr.com/api``, served here (send ``host_header``)."""
        return f"{self.base_url}/api"

    @property
    def host_header(self) -> str:
        return f"{self.company_domain}.bamboohr.localhost"

    @property
    def env(self) -> dict[str, str]:
        # On loopback: the sync refuses private hosts unless the site allows them.
        return {"BAMBOOHR_BASE_URL": self.gateway_url, "BAMBOOHR_API_KEY": self.api_key,
                "HR_SYNC_ALLOW_PRIVATE_HOSTS": "1"}  # fmt: skip

    # -- employees ----------------------------------------------------------------------

    def add_employee(
        self,
        first_name: str,
        last_name: str,
        work_email: str | None,
        *,
        employee_id: str | None = None,
        department: str | None = None,
        job_title: str | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> str:
        """A new hire, active and full-time; returns its id (a string, as BambooHR's are)."""
        moment = at or _now()
        with self._lock:
            new_id = employee_id or str(self._next_id)
            if new_id in self._employees:
                raise ValueError(f"employee {new_id} exists")
            if new_id.isdigit():
                self._next_id = max(self._next_id, int(new_id) + 1)
            values: dict[str, Any] = {
                "firstName": first_name,
                "lastName": last_name,
                "preferredName": None,
                "workEmail": work_email,
                "department": department,
                "jobTitle": job_title,
                "division": None,
                "location": None,
                "workPhone": None,
                "mobilePhone": None,
                "supervisor": None,
                "employeeNumber": new_id,
                "status": "Active",
                "employmentHistoryStatus": "Full-Time",
                "hireDate": moment.date().isoformat(),
                "terminationDate": EMPTY_DATE,
            }
            values.update(fields)
            self._employees[new_id] = BambooEmployee(new_id, values, moment, moment)
            return new_id

    def change_employee(
        self, employee_id: str, *, at: datetime | None = None, **fields: Any
    ) -> None:
        """Change fields (BambooHR field names) and bump lastChanged."""
        with self._lock:
            employee = self._live(employee_id)
            employee.fields.update(fields)
            employee.last_changed = at or _now()

    def terminate(
        self,
        employee_id: str,
        *,
        on: date | None = None,
        employment_status: str = "Terminated",
        at: datetime | None = None,
    ) -> None:
        """What a termination does: status Inactive, a termination date, an employment-status
        row; the employee drops out of the directory and shows as ``Updated`` in the feed. A
        date in the future keeps the employee active until then, as BambooHR does."""
        on = on or (at or _now()).date()
        with self._lock:
            employee = self._live(employee_id)
            employee.fields["terminationDate"] = on.isoformat()
            employee.fields["employmentHistoryStatus"] = employment_status
            if on <= (at or _now()).date():
                employee.fields["status"] = "Inactive"
            employee.last_changed = at or _now()

    def rehire(
        self,
        employee_id: str,
        *,
        employment_status: str = "Full-Time",
        at: datetime | None = None,
    ) -> None:
        with self._lock:
            employee = self._live(employee_id)
            moment = at or _now()
            employee.fields.update(
                status="Active",
                employmentHistoryStatus=employment_status,
                terminationDate=EMPTY_DATE,
                hireDate=moment.date().isoformat(),
            )
            employee.last_changed = moment

    def delete_employee(self, employee_id: str, *, at: datetime | None = None) -> None:
        """Delete the record: ``Deleted`` in the feed, 404 from the employee endpoint."""
        with self._lock:
            employee = self._live(employee_id)
            employee.deleted = True
            employee.last_changed = at or _now()

    def employee(self, employee_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._employees[employee_id].fields)

    @property
    def latest(self) -> str | None:
        with self._lock:
            if not self._employees:
                return None
            return bamboo_timestamp(max(e.last_changed for e in self._employees.values()))

    def _live(self, employee_id: str) -> BambooEmployee:
        employee = self._employees[employee_id]
        if employee.deleted:
            raise KeyError(f"employee {employee_id} is deleted")
        return employee

    # -- faults and the request log ------------------------------------------------------

    def throttle(
        self,
        times: int = 1,
        *,
        retry_after: int | None = 1,
        status: int = 429,
        path_contains: str | None = None,
        after_requests: int = 0,
    ) -> None:
        """Rate-limit ``times`` requests (429; ``status=503`` for the pre-2026 answer), with
        ``Retry-After: retry_after`` seconds, or without the header when it is None."""

        def throttled() -> Response:
            response = _error(status, "Rate limit exceeded")
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            return response

        self._add_fault(times, throttled, path_contains, after_requests)

    def unavailable(
        self,
        times: int = 1,
        *,
        retry_after: int | None = None,
        path_contains: str | None = None,
        after_requests: int = 0,
    ) -> None:
        """503 Service Unavailable, with or without ``Retry-After``."""
        self.throttle(
            times,
            retry_after=retry_after,
            status=503,
            path_contains=path_contains,
            after_requests=after_requests,
        )

    def fail(
        self,
        times: int = 1,
        *,
        status: int = 500,
        path_contains: str | None = None,
        after_requests: int = 0,
    ) -> None:
        """Answer with a server error (500, 502, 504 …) and no Retry-After."""
        self._add_fault(
            times, lambda: _error(status, "Internal server error"), path_contains, after_requests
        )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.faults.clear()

    def _add_fault(
        self,
        times: int,
        respond: Callable[[], Response],
        path_contains: str | None,
        after_requests: int,
    ) -> None:
        with self._lock:
            self._faults.faults.append(_Fault(times, respond, path_contains, after_requests))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, route_contains: str = "", status: int | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self._log
                if route_contains in r.route and (status is None or r.status == status)
            )

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- HTTP ---------------------------------------------------------------------------

    def _wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        route, response = self._respond(request)
        with self._lock:
            self._log.append(
                RecordedRequest(
                    request.method,
                    request.path,
                    route,
                    dict(request.args),
                    dict(request.headers),
                    response.status_code,
                )
            )
        return response(environ, start_response)

    def _respond(self, request: Request) -> tuple[str, Response]:
        route = self._route(request)
        if route is None:
            return request.path, _error(404, "Not found")
        with self._lock:
            fault = self._faults.take(route)
        if fault is not None:
            return route, fault
        if not self._authorised(request.authorization):
            return route, _error(401, "Invalid API key")
        if request.method != "GET":
            return route, _error(405, "Method not allowed")
        wants_json = "application/json" in request.headers.get("Accept", "")
        parts = route.strip("/").split("/")
        if parts[:2] != ["v1", "employees"] or len(parts) != 3:
            return route, _error(404, "Not found")
        with self._lock:
            if parts[2] == "changed":
                return route, self._changed(request, wants_json)
            if parts[2] == "directory":
                return route, self._directory(wants_json)
            return route, self._get_employee(parts[2], request, wants_json)

    def _route(self, request: Request) -> str | None:
        """The API path below the base URL, or None for another company or path."""
        path = request.path
        gateway = "/api/gateway.php/"
        if path.startswith(gateway):
            domain, _, rest = path[len(gateway) :].partition("/")
            return "/" + rest if domain == self.company_domain else None
        if path.startswith("/api/"):
            host = request.host.split(":")[0]
            if host not in ("127.0.0.1", "localhost", self.host_header) and host != (
                f"{self.company_domain}.bamboohr.com"
            ):
                return None
            return path[len("/api") :]
        return None

    def _authorised(self, auth: Authorization | None) -> bool:
        return auth is not None and auth.type == "basic" and auth.username == self.api_key

    def _changed(self, request: Request, wants_json: bool) -> Response:
        since_text = request.args.get("since", "")
        try:
            since = _parse_since(since_text)
        except ValueError:
            return _error(400, "Invalid or missing since parameter")
        kind = request.args.get("type", "all").lower()
        if kind != "all" and kind not in CHANGE_TYPES:
            return _error(400, "Invalid type parameter")
        changes: dict[str, dict[str, str]] = {}
        for employee in self._employees.values():
            if employee.last_changed < since:
                continue
            if employee.deleted:
                action = "Deleted"
            elif employee.created >= since:
                action = "Inserted"
            else:
                action = "Updated"
            if kind != "all" and action != CHANGE_TYPES[kind]:
                continue
            changes[employee.id] = {
                "id": employee.id,
                "action": action,
                "lastChanged": bamboo_timestamp(employee.last_changed),
            }
        latest = max((c["lastChanged"] for c in changes.values()), default=bamboo_timestamp(_now()))
        if not wants_json:
            rows = "".join(
                f"<employee id={quoteattr(c['id'])} action={quoteattr(c['action'])} "
                f"lastChanged={quoteattr(c['lastChanged'])} />"
                for c in changes.values()
            )
            return _xml(f"<employees latest={quoteattr(latest)}>{rows}</employees>")
        employees: Any = changes if changes or self.empty_feed_as_object else []
        return _json({"latest": latest, "employees": employees})

    def _directory(self, wants_json: bool) -> Response:
        active = [e for e in self._employees.values() if not e.deleted and e.active]
        if not active:
            return _error(404, "No employees found")
        records = [_directory_record(e) for e in sorted(active, key=lambda e: _id_key(e.id))]
        if wants_json:
            return _json({"fields": DIRECTORY_FIELDS, "employees": records})
        fieldset = "".join(
            f"<field id={quoteattr(f['id'])}>{escape(f['name'])}</field>" for f in DIRECTORY_FIELDS
        )
        rows = "".join(
            f"<employee id={quoteattr(r['id'])}>{_xml_fields(r)}</employee>" for r in records
        )
        return _xml(
            f"<directory><fieldset>{fieldset}</fieldset><employees>{rows}</employees></directory>"
        )

    def _get_employee(self, employee_id: str, request: Request, wants_json: bool) -> Response:
        employee = self._employees.get(employee_id)
        if employee is None or employee.deleted:
            return _error(404, "Employee not found")
        names = [n for n in request.args.get("fields", "firstName,lastName").split(",") if n]
        if len(names) > 400:
            return _error(400, "Too many fields")
        record: dict[str, Any] = {"id": employee.id}
        for name in names:
            if name == "displayName":
                record[name] = _display_name(employee)
            elif name in employee.fields:
                record[name] = employee.fields[name]
        if wants_json:
            return _json(record)
        return _xml(f"<employee id={quoteattr(employee.id)}>{_xml_fields(record)}</employee>")


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_since(text: str) -> datetime:
    if not text:
        raise ValueError("since is required")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _id_key(employee_id: str) -> tuple[int, str]:
    return (int(employee_id), "") if employee_id.isdigit() else (0, employee_id)


def _display_name(employee: BambooEmployee) -> str:
    first = employee.fields.get("preferredName") or employee.fields.get("firstName") or ""
    return f"{first} {employee.fields.get('lastName') or ''}".strip()


def _directory_record(employee: BambooEmployee) -> dict[str, Any]:
    record: dict[str, Any] = {"id": employee.id}
    for definition in DIRECTORY_FIELDS:
        name = definition["id"]
        if name == "displayName":
            record[name] = _display_name(employee)
        elif name == "photoUploaded":
            record[name] = False
        elif name == "photoUrl":
            record[name] = "https://resources.bamboohr.com/images/photo_person_160x160.png"
        elif name == "canUploadPhoto":
            record[name] = 1
        else:
            record[name] = employee.fields.get(name)
    return record


def _xml_fields(record: dict[str, Any]) -> str:
    return "".join(
        f"<field id={quoteattr(k)}>{escape('' if v is None else str(v))}</field>"
        for k, v in record.items()
        if k != "id"
    )


def _json(body: Any) -> Response:
    return Response(json.dumps(body), mimetype="application/json")


def _xml(body: str) -> Response:
    return Response('<?xml version="1.0"?>\n' + body, mimetype="text/xml")


def _error(status: int, message: str) -> Response:
    """BambooHR's errors carry no body; the reason is in ``X-BambooHR-Error-Message``."""
    return Response(b"", status=status, headers={"X-BambooHR-Error-Message": message})
