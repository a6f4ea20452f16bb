"""A local stand-in for Moodle's REST web-service server, the user functions an HR sync calls.

It follows ../shared/moodle/WS.md (read from Moodle 4.5 source, compared with 4.1-4.4):
- ``{base_url}/webservice/rest/server.php``, POST or GET (merged), form-encoded parameters in
  PHP bracket notation (``users[0][customfields][0][type]=...``); JSON bodies are not read;
- ``moodlewsrestformat=json`` answers JSON, anything else XML (Moodle's default);
- every answer is HTTP 200, errors included: ``{"exception", "errorcode", "message"}`` (plus
  ``debuginfo`` when ``debug`` is on), except REST disabled, which is 403 with no body;
- the checks in Moodle's order: token (``invalidtoken``), function name
  (``invalidparameter``, "Missing function name"), function exists (``invalidrecord``),
  function in the token's service (``accessexception``), parameters
  (``invalidparameter``), then the function's own rules;
- ``core_user_get_users``, ``core_user_get_users_by_field``, ``core_user_create_users`` (one
  transaction for the batch) and ``core_user_update_users`` (per-user, failures become
  warnings; returns ``{"warnings": [...]}``).

Exception class names follow ``version``: "4.5" spells the core ones
``core\\exception\\moodle_exception``; "4.4" and older ``moodle_exception``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from werkzeug.wrappers import Request, Response

from tests.fakes.local_http import LocalWsgiServer

DEFAULT_TOKEN = "0123456789abcdef0123456789abcdef"
USER_FUNCTIONS = (
    "core_user_get_users",
    "core_user_get_users_by_field",
    "core_user_create_users",
    "core_user_update_users",
)
KNOWN_FUNCTIONS = (
    *USER_FUNCTIONS,
    "core_webservice_get_site_info",
    "enrol_manual_enrol_users",
    "enrol_manual_unenrol_users",
)
RESERVED = {
    "wstoken",
    "wsfunction",
    "moodlewsrestformat",
    "moodlewssettingraw",
    "moodlewssettingfileurl",
    "moodlewssettingfilter",
    "moodlewssettinglang",
    "moodlewssettingtimezone",
}
INTERNAL_AUTHS = {"manual", "email"}
INSTALLED_AUTHS = {"manual", "email", "nologin", "oidc", "oauth2", "ldap", "saml2", "shibboleth"}
GET_USERS_EXACT = {"id", "idnumber", "username", "auth"}
GET_USERS_LIKE = {"email", "firstname", "lastname"}
BY_FIELD_FIELDS = {"id", "idnumber", "username", "email"}
# The keys core_user_create_users / core_user_update_users accept, with their PARAM_ types.
USER_KEYS = {
    "username": "username",
    "auth": "plugin",
    "password": "raw",
    "createpassword": "bool",
    "firstname": "notags",
    "lastname": "notags",
    "email": "raw_trimmed",
    "maildisplay": "int",
    "city": "notags",
    "country": "alpha",
    "timezone": "timezone",
    "description": "raw",
    "firstnamephonetic": "notags",
    "lastnamephonetic": "notags",
    "middlename": "notags",
    "alternatename": "notags",
    "interests": "text",
    "idnumber": "raw",
    "institution": "text",
    "department": "text",
    "phone1": "notags",
    "phone2": "notags",
    "address": "text",
    "lang": "lang",
    "calendartype": "plugin",
    "theme": "plugin",
    "mailformat": "int",
}
CREATE_REQUIRED = ("username", "firstname", "lastname", "email")
UPDATE_EXTRA = {"id": "int", "suspended": "bool", "userpicture": "int"}
# validate_email(): the WHATWG e-mail address pattern Moodle uses.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
EMAIL_RE = re.compile(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")*$")
PARAM_MESSAGE = "Invalid parameter value detected"
MAINTENANCE = ("moodle_exception", "sitemaintenance",
               "The site is undergoing maintenance and is currently not available")  # fmt: skip


class WsError(Exception):
    """A Moodle exception as the REST server serialises it."""

    def __init__(
        self, exception: str, errorcode: str | None, message: str, debuginfo: str | None = None
    ) -> None:
        super().__init__(message)
        self.exception = exception
        self.errorcode = errorcode
        self.message = message
        self.debuginfo = debuginfo


def invalid_parameter(debuginfo: str) -> WsError:
    return WsError("invalid_parameter_exception", "invalidparameter", PARAM_MESSAGE, debuginfo)


@dataclass
class MoodleUser:
    id: int
    username: str
    email: str
    firstname: str
    lastname: str
    auth: str = "manual"
    idnumber: str = ""
    department: str = ""
    institution: str = ""
    suspended: bool = False
    deleted: bool = False
    confirmed: bool = True
    password: str = ""
    lang: str = "en"
    city: str = ""
    country: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)


@dataclass
class ProfileField:
    shortname: str
    name: str
    datatype: str = "text"


@dataclass
class Token:
    functions: set[str]
    suspended_user: bool = False


@dataclass(frozen=True)
class WsCall:
    wsfunction: str
    params: dict[str, Any]  # the function's parameters, brackets parsed
    token: str
    http_method: str
    raw: list[tuple[str, str]]  # every form/query pair as sent
    response: Any  # the decoded answer (an error object for errors), None for outages


@dataclass
class _Outage:
    kind: str  # "refused", "503" or "exception"
    times: int | None  # None: until restore()
    after_calls: int
    error: tuple[str, str, str]


class MoodleWsServer:
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        version: str = "4.5",
        profile_fields: Iterable[ProfileField] = (ProfileField("employeeid", "Employee ID"),),
        allow_accounts_same_email: bool = False,
        debug: bool = False,
    ) -> None:
        self.token = token
        self.version = version
        self.debug = debug
        self.rest_enabled = True
        self.allow_accounts_same_email = allow_accounts_same_email
        self.wwwroot = "https://moodle.example"
        self.profile_fields = {f.shortname: f for f in profile_fields}
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {token: Token(set(KNOWN_FUNCTIONS))}
        self._users: dict[int, MoodleUser] = {}
        # Lookups by username, idnumber and lower-cased email, kept in step with _users so
        # that a 10,000-user bench does not scan every user per call.
        self._index: dict[str, dict[str, set[int]]] = {"username": {}, "idnumber": {}, "email": {}}
        self._next_id = 1
        self._calls: list[WsCall] = []
        self._outages: list[_Outage] = []
        self._down = False
        self._closing: threading.Thread | None = None
        self._port = 0
        self._http = LocalWsgiServer(self._wsgi)
        self._add_builtin_users()

    # -- lifecycle and addresses --------------------------------------------------------

    def start(self) -> MoodleWsServer:
        self._http.start()
        self._port = int(self._http.base_url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self._closing is not None:
            self._closing.join()
        self._http.stop()
        self._http._server.server_close()

    @property
    def base_url(self) -> str:
        """The site's wwwroot as a client is configured with it (``MOODLE_WS_URL``)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"{self.base_url}/webservice/rest/server.php"

    @property
    def env(self) -> dict[str, str]:
        return {"MOODLE_WS_URL": self.base_url, "MOODLE_WS_TOKEN": self.token,
                "HR_SYNC_ALLOW_PRIVATE_HOSTS": "1"}  # fmt: skip

    # -- tokens and functions -----------------------------------------------------------

    def add_token(self, token: str, functions: Iterable[str] = KNOWN_FUNCTIONS) -> None:
        """Another token whose service holds ``functions``."""
        with self._lock:
            self._tokens[token] = Token(set(functions))

    def disable_function(self, name: str, token: str | None = None) -> None:
        """Take ``name`` out of the token's service: calls get ``accessexception``."""
        with self._lock:
            self._tokens[token or self.token].functions.discard(name)

    def enable_function(self, name: str, token: str | None = None) -> None:
        with self._lock:
            self._tokens[token or self.token].functions.add(name)

    def suspend_token_user(self, suspended: bool = True, token: str | None = None) -> None:
        with self._lock:
            self._tokens[token or self.token].suspended_user = suspended

    # -- users --------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        email: str,
        firstname: str = "Hand",
        lastname: str = "Made",
        *,
        auth: str = "manual",
        idnumber: str = "",
        department: str = "",
        institution: str = "",
        suspended: bool = False,
        profile: dict[str, str] | None = None,
    ) -> int:
        """A user made outside the sync, e.g. by hand in the admin UI (auth manual, no
        idnumber by default); returns the id."""
        with self._lock:
            user = MoodleUser(
                self._next_id,
                username,
                email,
                firstname,
                lastname,
                auth=auth,
                idnumber=idnumber,
                department=department,
                institution=institution,
                suspended=suspended,
                profile=dict(profile or {}),
            )
            self._store(user)
            return user.id

    def user(self, user_id: int) -> MoodleUser:
        with self._lock:
            return _copy(self._users[user_id])

    def find_user(
        self, *, idnumber: str | None = None, email: str | None = None, username: str | None = None
    ) -> MoodleUser | None:
        with self._lock:
            for user in self._users.values():
                if (
                    (idnumber is None or user.idnumber == idnumber)
                    and (email is None or user.email.lower() == email.lower())
                    and (username is None or user.username == username)
                ):
                    return _copy(user)
        return None

    @property
    def users(self) -> list[MoodleUser]:
        """Every user but guest and admin, by id."""
        with self._lock:
            return [_copy(u) for u in self._users.values() if u.id > 2]

    def _add_builtin_users(self) -> None:
        # A fresh install: 1 = guest, 2 = admin (the token's user).
        self._store(MoodleUser(1, "guest", "root@localhost", "Guest user", " "))
        self._store(MoodleUser(2, "admin", "admin@moodle.example", "Admin", "User"))

    def _store(self, user: MoodleUser) -> None:
        self._users[user.id] = user
        self._next_id = max(self._next_id, user.id + 1)
        self._reindex(user, add=True)

    def _reindex(self, user: MoodleUser, *, add: bool) -> None:
        for name, value in (
            ("username", user.username),
            ("idnumber", user.idnumber),
            ("email", user.email.lower()),
        ):
            ids = self._index[name].setdefault(value, set())
            if add:
                ids.add(user.id)
            else:
                ids.discard(user.id)

    def _with(self, name: str, value: str) -> list[MoodleUser]:
        """Users whose ``name`` (username, idnumber, or email case-insensitively) is value."""
        key = value.lower() if name == "email" else value
        return [self._users[i] for i in sorted(self._index[name].get(key, ()))]

    # -- outages and the call log ---------------------------------------------------------

    def outage(
        self,
        kind: str = "503",
        *,
        times: int | None = 1,
        after_calls: int = 0,
        error: tuple[str, str, str] = MAINTENANCE,
    ) -> None:
        """Fail ``times`` requests (None: until ``restore()``) once ``after_calls`` passed.

        - ``"503"``: HTTP 503 with an HTML body, as a proxy in front of a down site answers;
        - ``"exception"``: HTTP 200 with the error object ``error`` = (exception, errorcode,
          message), by default maintenance mode;
        - ``"refused"``: the connection is dropped unanswered and, from then on until
          ``restore()``, the port refuses connections (``times`` is ignored).
        """
        if kind not in ("503", "exception", "refused"):
            raise ValueError(kind)
        with self._lock:
            self._outages.append(_Outage(kind, times, after_calls, error))

    def restore(self) -> None:
        """End every outage; a refused port listens again on the same port."""
        with self._lock:
            self._outages.clear()
            was_down, self._down = self._down, False
        if was_down:
            if self._closing is not None:
                self._closing.join()
            self._http.stop()
            self._http._server.server_close()
            self._http = _listen_again(self._wsgi, self._port)
            self._http.start()

    @property
    def calls(self) -> list[WsCall]:
        with self._lock:
            return list(self._calls)

    def count(self, wsfunction: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self._calls if wsfunction in (None, c.wsfunction))

    def clear_log(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- HTTP ---------------------------------------------------------------------------

    def _wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        if request.path != "/webservice/rest/server.php":
            return Response("Not found", status=404)(environ, start_response)
        # $_GET and $_POST merged, POST winning; JSON bodies are not read.
        pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
        merged = dict(pairs)
        wsfunction = merged.get("wsfunction", "")
        outage = self._take_outage()
        if outage is not None and outage.kind == "refused":
            self._go_down(environ)
            self._log(wsfunction, {}, merged, request.method, pairs, None)
            return Response(b"")(environ, start_response)
        if outage is not None and outage.kind == "503":
            self._log(wsfunction, {}, merged, request.method, pairs, None)
            html = "<html><body><h1>503 Service Unavailable</h1></body></html>"
            return Response(html, status=503, mimetype="text/html")(environ, start_response)
        if not self.rest_enabled:
            self._log(wsfunction, {}, merged, request.method, pairs, None)
            return Response(b"", status=403)(environ, start_response)
        as_json = merged.get("moodlewsrestformat") == "json"
        params: dict[str, Any] = {}
        try:
            params = parse_brackets((k, v) for k, v in pairs if k not in RESERVED)
            if outage is not None:
                raise WsError(*outage.error)
            result = self._call(merged.get("wstoken", ""), wsfunction, params)
        except WsError as error:
            result = self._error_object(error)
        self._log(wsfunction, params, merged, request.method, pairs, result)
        if as_json:
            body = json.dumps(result)
            return Response(body, mimetype="application/json")(environ, start_response)
        body = _to_xml(result)
        return Response(body, mimetype="application/xml")(environ, start_response)

    def _take_outage(self) -> _Outage | None:
        with self._lock:
            if self._down:
                return _Outage("refused", None, 0, MAINTENANCE)
            for outage in self._outages:
                if outage.after_calls:
                    outage.after_calls -= 1
                    return None
                if outage.kind == "refused":
                    self._down = True
                    return outage
                if outage.times is not None:
                    outage.times -= 1
                    if outage.times <= 0:
                        self._outages.remove(outage)
                return outage
        return None

    def _go_down(self, environ: dict) -> None:
        """Drop this connection unanswered, then stop listening (in the background: the
        server loop cannot be stopped from a request it is serving)."""
        connection = environ.get("werkzeug.socket")
        if connection is not None:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        http = self._http

        def close() -> None:
            http.stop()
            http._server.server_close()

        self._closing = threading.Thread(target=close, daemon=True)
        self._closing.start()

    def _log(
        self,
        wsfunction: str,
        params: dict[str, Any],
        merged: dict[str, str],
        method: str,
        pairs: list[tuple[str, str]],
        result: Any,
    ) -> None:
        call = WsCall(wsfunction, params, merged.get("wstoken", ""), method, pairs, result)
        with self._lock:
            self._calls.append(call)

    def _exception_name(self, name: str) -> str:
        core = {"moodle_exception", "invalid_parameter_exception", "coding_exception",
                "required_capability_exception"}  # fmt: skip
        if name in core and self.version >= "4.5":
            return "core\\exception\\" + name
        return name

    def _error_object(self, error: WsError) -> dict[str, Any]:
        body: dict[str, Any] = {"exception": self._exception_name(error.exception)}
        if error.errorcode is not None:
            body["errorcode"] = error.errorcode
        body["message"] = error.message
        if self.debug and error.debuginfo:
            body["message"] = f"{error.message} ({error.debuginfo})"
            body["debuginfo"] = error.debuginfo
        return body

    # -- the functions ------------------------------------------------------------------

    def _call(self, wstoken: str, wsfunction: str, params: dict[str, Any]) -> Any:
        with self._lock:
            token = self._tokens.get(wstoken)
            if token is None:
                raise WsError("moodle_exception", "invalidtoken", "Invalid token - token not found")
            if token.suspended_user:
                raise WsError(
                    "moodle_exception",
                    "wsaccessusersuspended",
                    "Refused web service access for suspended username: admin",
                )
            if not wsfunction:
                raise invalid_parameter("Missing function name")
            if wsfunction not in KNOWN_FUNCTIONS:
                raise WsError(
                    "dml_missing_record_exception",
                    "invalidrecord",
                    "Can't find data record in database table external_functions.",
                    "SELECT * FROM {external_functions} WHERE name = ?",
                )
            if wsfunction not in token.functions:
                raise WsError(
                    "webservice_access_exception",
                    "accessexception",
                    "Access control exception",
                    f"Access to the function {wsfunction}() is not allowed. There could be "
                    "multiple reasons for this: 1. The service linked to the user token does "
                    "not contain the function. 2. The service is user-restricted and the user "
                    "is not listed. 3. The function is called with incorrect parameters.",
                )
            handler = {
                "core_user_get_users": self._get_users,
                "core_user_get_users_by_field": self._get_users_by_field,
                "core_user_create_users": self._create_users,
                "core_user_update_users": self._update_users,
            }.get(wsfunction)
            if handler is None:
                return None
            return handler(params)

    def _get_users(self, params: dict[str, Any]) -> dict[str, Any]:
        _only_keys(params, {"criteria"})
        criteria = _required(params, "criteria", "")
        criteria = _as_list(criteria, "criteria")
        warnings: list[dict[str, Any]] = []
        seen: set[str] = set()
        tests = []
        for criterion in criteria:
            if not isinstance(criterion, dict):
                raise invalid_parameter("criteria => Only arrays accepted.")
            _only_keys(criterion, {"key", "value"}, "criteria")
            key = _clean("alpha", _required(criterion, "key", "criteria"), "key", "criteria")
            value = _scalar(_required(criterion, "value", "criteria"), "value", "criteria")
            if key not in GET_USERS_EXACT | GET_USERS_LIKE:
                warnings.append({
                    "item": key,
                    "warningcode": "invalidfieldparameter",
                    "message": f"The search key '{key}' is not supported, look at the web "
                    "service documentation",
                })  # fmt: skip
                continue
            if key in seen:
                raise WsError("moodle_exception", "keyalreadyset", "error/keyalreadyset",
                              f"The key {key} can only be sent once")  # fmt: skip
            seen.add(key)
            tests.append((key, value))
        candidates: list[MoodleUser] | None = None
        for key, value in tests:
            if key in ("username", "idnumber") or (
                key == "email" and not re.search(r"[%_\\]", value)
            ):
                candidates = self._with(key, value)
                break
            if key == "id":
                user = self._users.get(_clean_value("int", value))
                candidates = [user] if user else []
                break
        if candidates is None:
            candidates = self._sorted_users()
        found = [
            u for u in candidates if not u.deleted and all(_matches(u, k, v) for k, v in tests)
        ]
        return {"users": [self._user_out(u) for u in found], "warnings": warnings}

    def _get_users_by_field(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        _only_keys(params, {"field", "values"})
        name = _clean("alpha", _required(params, "field", ""), "field", "")
        values = [
            _scalar(v, "values", "") for v in _as_list(_required(params, "values", ""), "values")
        ]
        if name not in BY_FIELD_FIELDS:
            raise WsError("coding_exception", "codingerror",
                          "Coding error detected, it must be fixed by a programmer: invalid field "
                          "parameter",
                          f"The search field '{name}' is not supported, look at the web service "
                          "documentation")  # fmt: skip
        wanted = set()
        for value in values:
            cleaned = _clean_value(
                "int" if name == "id" else "email" if name == "email" else "raw", value
            )
            if str(cleaned) != value:
                raise invalid_parameter(
                    f"The field '{name}' value is invalid: {value}(cleaned value: {cleaned})"
                )
            wanted.add(value)
        if name == "id":
            ids = {int(v) for v in wanted}
            found = [self._users[i] for i in sorted(ids) if i in self._users]
        else:
            matched = {u.id: u for v in wanted for u in self._with(name, v)}
            # Exact equality (Moodle's get_records_list), not the index's lower-cased email.
            found = [matched[i] for i in sorted(matched) if getattr(matched[i], name) in wanted]
        return [self._user_out(u) for u in found]

    def _create_users(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        _only_keys(params, {"users"})
        users = _as_list(_required(params, "users", ""), "users")
        allowed = set(USER_KEYS) | {"customfields", "preferences"}
        cleaned_users = []
        for raw in users:
            if not isinstance(raw, dict):
                raise invalid_parameter("users => Only arrays accepted.")
            _only_keys(raw, allowed, "users")
            for key in CREATE_REQUIRED:
                _required(raw, key, "users")
            cleaned_users.append(_clean_user(raw, "users"))
        # One transaction: build on a copy, keep it only if every user passed.
        staged: dict[int, MoodleUser] = {}
        next_id = self._next_id
        results = []
        for user in cleaned_users:
            username = user["username"]
            if not username:
                raise invalid_parameter("Invalid username")
            if self._with("username", username) or any(
                u.username == username for u in staged.values()
            ):
                raise invalid_parameter(f"Username already exists: {username}")
            auth = user.get("auth", "manual")
            if auth not in INSTALLED_AUTHS:
                raise invalid_parameter(f"Invalid authentication type: {auth}")
            if (
                auth in INTERNAL_AUTHS
                and not user.get("password")
                and not user.get("createpassword")
            ):
                raise invalid_parameter(
                    "Invalid password: you must provide a password, or set createpassword."
                )
            email = user["email"]
            if not EMAIL_RE.match(email):
                raise invalid_parameter(f"Email address is invalid: {email}")
            same_email = [*self._with("email", email), *staged.values()]
            if not self.allow_accounts_same_email and any(
                u.email.lower() == email.lower() and not u.deleted for u in same_email
            ):
                raise invalid_parameter(f"Email address already exists: {email}")
            if not user["firstname"] or not user["lastname"]:
                raise invalid_parameter("Invalid parameter value detected")
            created = MoodleUser(
                next_id,
                username,
                email,
                user["firstname"],
                user["lastname"],
                auth=auth,
                idnumber=user.get("idnumber", ""),
                department=user.get("department", ""),
                institution=user.get("institution", ""),
                password=user.get("password", "") if auth in INTERNAL_AUTHS else "not cached",
                lang=user.get("lang", "en"),
                city=user.get("city", ""),
                country=user.get("country", ""),
                profile=self._profile_values(user.get("customfields", [])),
            )
            staged[next_id] = created
            results.append({"id": next_id, "username": username})
            next_id += 1
        for created in staged.values():
            self._store(created)
        return results

    def _update_users(self, params: dict[str, Any]) -> dict[str, Any]:
        _only_keys(params, {"users"})
        users = _as_list(_required(params, "users", ""), "users")
        allowed = set(USER_KEYS) | set(UPDATE_EXTRA) | {"customfields", "preferences"}
        allowed.discard("createpassword")
        cleaned_users = []
        for raw in users:
            if not isinstance(raw, dict):
                raise invalid_parameter("users => Only arrays accepted.")
            _only_keys(raw, allowed, "users")
            _required(raw, "id", "users")
            cleaned_users.append(_clean_user(raw, "users"))
        warnings = []
        for change in cleaned_users:
            try:
                self._update_one(change)
            except WsError as error:
                warnings.append({
                    "item": "user",
                    "itemid": change["id"],
                    "warningcode": error.errorcode,
                    "message": error.message,
                })  # fmt: skip
        return {"warnings": warnings}

    def _update_one(self, change: dict[str, Any]) -> None:
        existing = self._users.get(change["id"])
        if existing is None:
            raise WsError("moodle_exception", "invaliduserid", "Invalid user ID")
        if existing.id == 1:
            raise WsError("moodle_exception", "usernotupdatedguest", "error/usernotupdatedguest")
        if existing.deleted:
            raise WsError(
                "moodle_exception", "usernotupdateddeleted", "error/usernotupdateddeleted"
            )
        email = change.get("email")
        if email is not None and email != existing.email:
            if not EMAIL_RE.match(email):
                raise WsError("moodle_exception", "useremailinvalid", "error/useremailinvalid")
            if not self.allow_accounts_same_email and any(
                u.id != existing.id and not u.deleted for u in self._with("email", email)
            ):
                raise WsError("moodle_exception", "useremailduplicate", "Duplicate address")
        username = change.get("username")
        if username is not None and any(
            u.id != existing.id for u in self._with("username", username)
        ):
            # No check in user_update_user: the unique index refuses the write.
            raise WsError("dml_write_exception", "dmlwriteexception", "Error writing to database")
        self._reindex(existing, add=False)
        try:
            self._apply(existing, change)
        finally:
            self._reindex(existing, add=True)

    def _apply(self, existing: MoodleUser, change: dict[str, Any]) -> None:
        for key, value in change.items():
            if key == "suspended":
                existing.suspended = bool(value)
            elif key == "customfields":
                existing.profile.update(self._profile_values(value))
            elif key in ("id", "preferences", "userpicture"):
                continue
            elif hasattr(existing, key) and key not in ("extra", "profile", "deleted"):
                setattr(existing, key, value)
            else:
                existing.extra[key] = value

    def _profile_values(self, fields: list[dict[str, Any]]) -> dict[str, str]:
        # profile_save_data() saves the fields that exist and ignores other shortnames.
        return {f["type"]: f["value"] for f in fields if f["type"] in self.profile_fields}

    def _sorted_users(self) -> list[MoodleUser]:
        return [self._users[i] for i in sorted(self._users)]

    def _user_out(self, user: MoodleUser) -> dict[str, Any]:
        """What user_get_user_details() returns to a site admin."""
        out: dict[str, Any] = {
            "id": user.id,
            "username": user.username,
            "firstname": user.firstname,
            "lastname": user.lastname,
            "fullname": f"{user.firstname} {user.lastname}",
            "email": user.email,
            "department": user.department,
            "institution": user.institution,
        }
        if user.idnumber:
            out["idnumber"] = user.idnumber
        out.update({
            "firstaccess": 0,
            "lastaccess": 0,
            "auth": user.auth,
            "suspended": user.suspended,
            "confirmed": user.confirmed,
            "lang": user.lang,
            "theme": "",
            "timezone": "99",
            "mailformat": 1,
            "trackforums": 0,
            "description": "",
            "descriptionformat": 1,
        })  # fmt: skip
        if user.city:
            out["city"] = user.city
        if user.country:
            out["country"] = user.country
        custom = [
            {
                "type": self.profile_fields[name].datatype,
                "value": value,
                "displayvalue": value,
                "name": self.profile_fields[name].name,
                "shortname": name,
            }
            for name, value in user.profile.items()
            if value != "" and name in self.profile_fields
        ]
        if custom:
            out["customfields"] = custom
        picture = f"{self.wwwroot}/theme/image.php/boost/core/1/u/"
        out["profileimageurlsmall"] = picture + "f2"
        out["profileimageurl"] = picture + "f1"
        return out


# -- bracket notation and parameter validation -----------------------------------------------


def parse_brackets(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """PHP's reading of ``a[0][b]=x`` into nested arrays; integer-keyed arrays become lists
    in key order (what Moodle's external_multiple_structure iterates)."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        head, _, rest = name.partition("[")
        keys = [head] + (re.findall(r"([^\[\]]*)\]", "[" + rest) if rest else [])
        node = root
        for key in keys[:-1]:
            key = key or str(len(node))  # a[]=x appends, as PHP does
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        last = keys[-1] if keys[-1] != "" else str(len(node))
        node[last] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(re.fullmatch(r"-?\d+", k) for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _where(context: str, key: str) -> str:
    return f"{context} => {PARAM_MESSAGE}: {key}" if context else key


def _only_keys(params: dict[str, Any], allowed: set[str], context: str = "") -> None:
    extra = sorted(set(params) - allowed)
    if extra:
        message = f"Unexpected keys ({', '.join(extra)}) detected in parameter array."
        raise invalid_parameter(f"{context} => {PARAM_MESSAGE}: {message}" if context else message)


def _required(params: dict[str, Any], key: str, context: str) -> Any:
    if key not in params:
        message = f"Missing required key in single structure: {key}"
        raise invalid_parameter(f"{context} => {PARAM_MESSAGE}: {message}" if context else message)
    return params[key]


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and not value:
        return []
    raise invalid_parameter(
        f"{key} => {PARAM_MESSAGE}: Only arrays accepted. The bad value is: '{value}'"
    )


def _scalar(value: Any, key: str, context: str) -> str:
    if not isinstance(value, str):
        raise invalid_parameter(
            _where(context, f"{key} => {PARAM_MESSAGE}: Invalid external api parameter")
        )
    return value


def _clean(kind: str, value: Any, key: str, context: str) -> Any:
    text = _scalar(value, key, context)
    cleaned = _clean_value(kind, text)
    # PHP's loose `$cleaned != $param`: "true" is not 1, "012" is 12.
    same = cleaned == int(text) if kind == "int" and re.fullmatch(r"-?\d+", text) else None
    if not same and str(cleaned) != text:
        detail = (
            f"{key} => {PARAM_MESSAGE}: Invalid external api parameter: the value is "
            f'"{text}", the server was expecting "{kind}" type'
        )
        raise invalid_parameter(f"{context} => {PARAM_MESSAGE}: {detail}" if context else detail)
    return cleaned


def _clean_value(kind: str, text: str) -> Any:
    """clean_param() for the PARAM_ types these functions use."""
    if kind == "int":
        return int(text) if re.fullmatch(r"-?\d+", text) else 0
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("on", "yes", "true"):
            return 1
        if lowered in ("off", "no", "false"):
            return 0
        return 0 if text in ("", "0") else 1
    if kind == "alpha":
        return re.sub(r"[^a-zA-Z]", "", text)
    if kind == "username":
        return re.sub(r"[^-.@_a-z0-9]", "", text.strip().lower())
    if kind == "plugin":
        return text if re.fullmatch(r"[a-z][a-z0-9_]*", text) else ""
    if kind == "notags" or kind == "text":
        return re.sub(r"<[^>]*>", "", text)
    if kind == "raw_trimmed":
        return text.strip()
    if kind == "email":
        return text if EMAIL_RE.match(text) else ""
    return text


def _clean_user(raw: dict[str, Any], context: str) -> dict[str, Any]:
    user: dict[str, Any] = {}
    types = {**USER_KEYS, **UPDATE_EXTRA}
    for key, value in raw.items():
        if key in ("customfields", "preferences"):
            items = _as_list(value, key)
            for item in items:
                if not isinstance(item, dict):
                    raise invalid_parameter(
                        f"{context} => {PARAM_MESSAGE}: {key} => Only arrays accepted."
                    )
                _only_keys(item, {"type", "value"}, f"{context} => {PARAM_MESSAGE}: {key}")
                _required(item, "type", f"{context} => {PARAM_MESSAGE}: {key}")
                _required(item, "value", f"{context} => {PARAM_MESSAGE}: {key}")
            user[key] = items
        elif types[key] in ("raw", "timezone", "lang", "alpha"):
            user[key] = _scalar(value, key, context)
        elif types[key] == "raw_trimmed":
            user[key] = _scalar(value, key, context).strip()
        else:
            user[key] = _clean(types[key], value, key, context)
    return user


def _like(pattern: str, value: str) -> bool:
    """SQL LIKE, case-insensitive, ``\\`` escaping, as $DB->sql_like(…, false)."""
    regex = ""
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            regex += re.escape(next(chars, "\\"))
        elif char == "%":
            regex += ".*"
        elif char == "_":
            regex += "."
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _matches(user: MoodleUser, key: str, value: str) -> bool:
    if key == "id":
        return user.id == _clean_value("int", value)
    if key in GET_USERS_EXACT:
        return str(getattr(user, key)) == value
    return _like(value, str(getattr(user, key)))


def _copy(user: MoodleUser) -> MoodleUser:
    return MoodleUser(**{**user.__dict__, "extra": dict(user.extra), "profile": dict(user.profile)})


def _listen_again(app: Any, port: int) -> LocalWsgiServer:
    server = LocalWsgiServer.__new__(LocalWsgiServer)
    from werkzeug.serving import make_server

    from tests.fakes.local_http import _QuietRequestHandler

    server._server = make_server(
        "127.0.0.1", port, app, threaded=True, request_handler=_QuietRequestHandler
    )
    server._thread = threading.Thread(
        target=server._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    return server


def _to_xml(value: Any) -> str:
    """Moodle's REST XML: RESPONSE, then MULTIPLE/SINGLE/KEY/VALUE; errors as EXCEPTION."""
    if isinstance(value, dict) and "exception" in value:
        parts = [f"<EXCEPTION class={quoteattr(value['exception'])}>"]
        if "errorcode" in value:
            parts.append(f"<ERRORCODE>{escape(value['errorcode'])}</ERRORCODE>")
        parts.append(f"<MESSAGE>{escape(value['message'])}</MESSAGE>")
        if "debuginfo" in value:
            parts.append(f"<DEBUGINFO>{escape(value['debuginfo'])}</DEBUGINFO>")
        parts.append("</EXCEPTION>")
        return '<?xml version="1.0" encoding="UTF-8" ?>\n' + "".join(parts) + "\n"
    inner = "" if value is None else _xml_value(value)
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n{inner}</RESPONSE>\n'


def _xml_value(value: Any) -> str:
    if isinstance(value, dict):
        keys = "".join(f'<KEY name="{k}">{_xml_value(v)}</KEY>\n' for k, v in value.items())
        return f"<SINGLE>\n{keys}</SINGLE>\n"
    if isinstance(value, list):
        return "<MULTIPLE>\n" + "".join(_xml_value(v) for v in value) + "</MULTIPLE>\n"
    if value is None:
        return '<VALUE null="null"/>'
    if isinstance(value, bool):
        return f"<VALUE>{int(value)}</VALUE>"
    return f"<VALUE>{escape(str(value))}</VALUE>"
