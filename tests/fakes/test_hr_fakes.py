"""The HR-sync fakes answer with BambooHR's and Moodle's real paths, shapes and errors."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from tests.fakes.bamboohr_server import BambooHrServer
from tests.fakes.moodle_ws_server import DEFAULT_TOKEN, MoodleWsServer, parse_brackets

JSON = {"Accept": "application/json"}
HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def _bamboo(server: BambooHrServer, path: str, key: str | None = None, **kwargs):
    kwargs.setdefault("headers", JSON)
    return requests.get(
        server.gateway_url + path, auth=(key or server.api_key, "x"), timeout=5, **kwargs
    )


def _ws(server: MoodleWsServer, function: str, data: dict | list, token: str = DEFAULT_TOKEN):
    pairs = list(data.items()) if isinstance(data, dict) else list(data)
    body = [("wstoken", token), ("wsfunction", function), ("moodlewsrestformat", "json"), *pairs]
    response = requests.post(server.ws_url, data=body, timeout=5)
    assert response.status_code == 200
    return response.json()


# -- BambooHR -------------------------------------------------------------------------------


def test_changed_feed_lists_inserted_updated_and_deleted_with_latest(bamboohr_server):
    long_ago = datetime.now(UTC) - timedelta(days=30)
    old = bamboohr_server.add_employee("Old", "Timer", "old@acme.example", at=long_ago)
    gone = bamboohr_server.add_employee("Gone", "Soon", "gone@acme.example", at=long_ago)
    new = bamboohr_server.add_employee("New", "Hire", "new@acme.example")
    bamboohr_server.change_employee(old, department="Sales")
    bamboohr_server.delete_employee(gone)

    body = _bamboo(bamboohr_server, "/v1/employees/changed", params={"since": HOUR_AGO}).json()

    assert set(body) == {"latest", "employees"}
    assert {k: v["action"] for k, v in body["employees"].items()} == {
        old: "Updated",
        gone: "Deleted",
        new: "Inserted",
    }
    assert body["employees"][new]["id"] == new
    assert body["latest"] == max(e["lastChanged"] for e in body["employees"].values())
    assert body["latest"].endswith("+00:00")
    only_updated = _bamboo(
        bamboohr_server, "/v1/employees/changed", params={"since": HOUR_AGO, "type": "updated"}
    ).json()
    assert list(only_updated["employees"]) == [old]


def test_empty_feed_is_spelled_as_an_array_or_an_object(bamboohr_server):
    params = {"since": datetime.now(UTC).isoformat()}
    assert (
        _bamboo(bamboohr_server, "/v1/employees/changed", params=params).json()["employees"] == []
    )
    bamboohr_server.empty_feed_as_object = True
    assert (
        _bamboo(bamboohr_server, "/v1/employees/changed", params=params).json()["employees"] == {}
    )


def test_changed_feed_needs_a_valid_since_and_type(bamboohr_server):
    assert _bamboo(bamboohr_server, "/v1/employees/changed").status_code == 400
    assert (
        _bamboo(bamboohr_server, "/v1/employees/changed", params={"since": "yesterday"}).status_code
        == 400
    )
    bad_type = {"since": HOUR_AGO, "type": "renamed"}
    assert _bamboo(bamboohr_server, "/v1/employees/changed", params=bad_type).status_code == 400


def test_directory_lists_active_employees_and_a_termination_leaves_it(bamboohr_server):
    stays = bamboohr_server.add_employee("Ann", "Active", "ann@acme.example", department="Ops")
    leaves = bamboohr_server.add_employee("Lee", "Leaving", "lee@acme.example")
    bamboohr_server.terminate(leaves)

    body = _bamboo(bamboohr_server, "/v1/employees/directory").json()

    assert {f["id"] for f in body["fields"]} >= {"displayName", "firstName", "workEmail"}
    assert [e["id"] for e in body["employees"]] == [stays]
    assert body["employees"][0]["displayName"] == "Ann Active"
    assert body["employees"][0]["department"] == "Ops"
    changed = _bamboo(bamboohr_server, "/v1/employees/changed", params={"since": HOUR_AGO}).json()
    assert changed["employees"][leaves]["action"] == "Inserted"  # created in the window


def test_empty_directory_is_404(bamboohr_server):
    assert _bamboo(bamboohr_server, "/v1/employees/directory").status_code == 404


def test_employee_lookup_returns_the_requested_fields(bamboohr_server):
    employee = bamboohr_server.add_employee("Tim", "Term", "tim@acme.example")
    fields = {"fields": "status,employmentHistoryStatus,terminationDate,workEmail"}
    active = _bamboo(bamboohr_server, f"/v1/employees/{employee}", params=fields).json()
    assert active == {
        "id": employee,
        "status": "Active",
        "employmentHistoryStatus": "Full-Time",
        "terminationDate": "0000-00-00",
        "workEmail": "tim@acme.example",
    }
    bamboohr_server.terminate(employee, on=date.today())
    ended = _bamboo(bamboohr_server, f"/v1/employees/{employee}", params=fields).json()
    assert (ended["status"], ended["terminationDate"]) == ("Inactive", date.today().isoformat())
    bamboohr_server.rehire(employee)
    back = _bamboo(bamboohr_server, f"/v1/employees/{employee}", params=fields).json()
    assert (back["status"], back["terminationDate"]) == ("Active", "0000-00-00")
    bamboohr_server.delete_employee(employee)
    assert _bamboo(bamboohr_server, f"/v1/employees/{employee}", params=fields).status_code == 404


def test_bad_or_missing_key_is_401_with_the_reason_in_a_header(bamboohr_server):
    wrong = _bamboo(bamboohr_server, "/v1/employees/directory", key="wrong")
    assert wrong.status_code == 401
    assert wrong.headers["X-BambooHR-Error-Message"]
    assert wrong.content == b""
    anonymous = requests.get(bamboohr_server.gateway_url + "/v1/employees/directory", timeout=5)
    assert anonymous.status_code == 401


def test_both_base_url_forms_and_xml_by_default(bamboohr_server):
    bamboohr_server.add_employee("Ann", "Active", "ann@acme.example")
    auth = (bamboohr_server.api_key, "x")
    path = "/v1/employees/directory"
    headers = {**JSON, "Host": bamboohr_server.host_header}
    by_host = requests.get(bamboohr_server.api_url + path, auth=auth, headers=headers, timeout=5)
    assert by_host.json()["employees"][0]["firstName"] == "Ann"
    other = {**JSON, "Host": "globex.bamboohr.localhost"}
    assert (
        requests.get(
            bamboohr_server.api_url + path, auth=auth, headers=other, timeout=5
        ).status_code
        == 404
    )
    other_gateway = bamboohr_server.base_url + "/api/gateway.php/globex" + path
    assert requests.get(other_gateway, auth=auth, headers=JSON, timeout=5).status_code == 404
    xml = requests.get(bamboohr_server.gateway_url + path, auth=auth, timeout=5)
    assert xml.text.startswith("<?xml") and '<field id="firstName">Ann</field>' in xml.text


def test_throttling_and_server_errors_by_path_then_normal_answers(bamboohr_server):
    bamboohr_server.add_employee("Ann", "Active", "ann@acme.example")
    bamboohr_server.throttle(1, retry_after=3, path_contains="/directory")
    bamboohr_server.throttle(1, retry_after=None)
    bamboohr_server.unavailable(1, retry_after=2)
    bamboohr_server.fail(1, status=502)

    first = _bamboo(bamboohr_server, "/v1/employees/directory")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "3")
    second = _bamboo(bamboohr_server, "/v1/employees/changed", params={"since": HOUR_AGO})
    assert second.status_code == 429 and "Retry-After" not in second.headers
    third = _bamboo(bamboohr_server, "/v1/employees/directory")
    assert (third.status_code, third.headers["Retry-After"]) == (503, "2")
    assert _bamboo(bamboohr_server, "/v1/employees/directory").status_code == 502
    assert _bamboo(bamboohr_server, "/v1/employees/directory").status_code == 200
    assert bamboohr_server.count("/v1/employees/directory") == 4
    assert bamboohr_server.count("", status=200) == 1
    assert bamboohr_server.requests[0].route == "/v1/employees/directory"


# -- Moodle ---------------------------------------------------------------------------------


def test_bracket_notation_parses_into_lists_and_structures():
    params = parse_brackets([
        ("users[0][username]", "jdoe"),
        ("users[0][customfields][0][type]", "employeeid"),
        ("users[0][customfields][0][value]", "E42"),
        ("users[1][username]", "ann"),
        ("values[1]", "b"),
        ("values[0]", "a"),
        ("field", "email"),
    ])  # fmt: skip
    assert params == {
        "users": [
            {"username": "jdoe", "customfields": [{"type": "employeeid", "value": "E42"}]},
            {"username": "ann"},
        ],
        "values": ["a", "b"],
        "field": "email",
    }


def test_invalid_token_is_the_exact_error_object_with_http_200(moodle_ws_server):
    body = _ws(moodle_ws_server, "core_user_get_users", {}, token="bad")
    assert body == {
        "exception": "core\\exception\\moodle_exception",
        "errorcode": "invalidtoken",
        "message": "Invalid token - token not found",
    }


def test_older_moodle_spells_the_global_exception_name():
    server = MoodleWsServer(version="4.4").start()
    try:
        assert (
            _ws(server, "core_user_get_users", {}, token="bad")["exception"] == "moodle_exception"
        )
    finally:
        server.stop()


def test_function_outside_the_service_is_an_access_exception(moodle_ws_server):
    moodle_ws_server.disable_function("core_user_get_users")
    body = _ws(moodle_ws_server, "core_user_get_users", {"criteria[0][key]": "idnumber",
                                                        "criteria[0][value]": "E1"})  # fmt: skip
    assert body == {
        "exception": "webservice_access_exception",
        "errorcode": "accessexception",
        "message": "Access control exception",
    }
    unknown = _ws(moodle_ws_server, "core_user_nonsense", {})
    assert (unknown["exception"], unknown["errorcode"]) == (
        "dml_missing_record_exception",
        "invalidrecord",
    )
    missing = _ws(moodle_ws_server, "", {})
    assert missing["errorcode"] == "invalidparameter"


def test_create_then_find_by_idnumber_email_and_field(moodle_ws_server):
    created = _ws(moodle_ws_server, "core_user_create_users", {
        "users[0][username]": "ann.active", "users[0][firstname]": "Ann",
        "users[0][lastname]": "Active", "users[0][email]": "Ann@acme.example",
        "users[0][auth]": "oidc", "users[0][idnumber]": "1",
        "users[0][department]": "Ops",
        "users[0][customfields][0][type]": "employeeid", "users[0][customfields][0][value]": "E1",
    })  # fmt: skip
    assert created == [{"id": 3, "username": "ann.active"}]

    by_idnumber = _ws(moodle_ws_server, "core_user_get_users",
                      {"criteria[0][key]": "idnumber", "criteria[0][value]": "1"})  # fmt: skip
    assert by_idnumber["warnings"] == []
    [user] = by_idnumber["users"]
    assert (user["id"], user["idnumber"], user["auth"], user["suspended"]) == (
        3,
        "1",
        "oidc",
        False,
    )
    assert user["customfields"] == [{"type": "text", "value": "E1", "displayvalue": "E1",
                                     "name": "Employee ID", "shortname": "employeeid"}]  # fmt: skip
    email = {"criteria[0][key]": "email", "criteria[0][value]": "ann@ACME.example"}
    by_email = _ws(moodle_ws_server, "core_user_get_users", email)
    assert [u["id"] for u in by_email["users"]] == [3]  # LIKE, case-insensitive
    idnumbers = [("field", "idnumber"), ("values[0]", "1"), ("values[1]", "nobody")]
    by_field = _ws(moodle_ws_server, "core_user_get_users_by_field", idnumbers)
    assert [u["username"] for u in by_field] == ["ann.active"]
    unsupported = _ws(moodle_ws_server, "core_user_get_users",
                      {"criteria[0][key]": "city", "criteria[0][value]": "x"})  # fmt: skip
    assert unsupported["warnings"][0]["warningcode"] == "invalidfieldparameter"


def test_create_errors_are_invalid_parameter_and_roll_the_batch_back(moodle_ws_server):
    moodle_ws_server.add_user("taken", "taken@acme.example")
    batch = {
        "users[0][username]": "fresh", "users[0][firstname]": "F", "users[0][lastname]": "R",
        "users[0][email]": "fresh@acme.example", "users[0][auth]": "oidc",
        "users[1][username]": "taken", "users[1][firstname]": "T", "users[1][lastname]": "K",
        "users[1][email]": "other@acme.example", "users[1][auth]": "oidc",
    }  # fmt: skip
    body = _ws(moodle_ws_server, "core_user_create_users", batch)
    assert body == {
        "exception": "core\\exception\\invalid_parameter_exception",
        "errorcode": "invalidparameter",
        "message": "Invalid parameter value detected",
    }
    assert moodle_ws_server.find_user(username="fresh") is None
    upper = _ws(moodle_ws_server, "core_user_create_users", {
        "users[0][username]": "Upper", "users[0][firstname]": "U", "users[0][lastname]": "P",
        "users[0][email]": "upper@acme.example", "users[0][auth]": "oidc"})  # fmt: skip
    assert upper["errorcode"] == "invalidparameter"
    moodle_ws_server.debug = True
    no_password = _ws(moodle_ws_server, "core_user_create_users", {
        "users[0][username]": "pw", "users[0][firstname]": "P", "users[0][lastname]": "W",
        "users[0][email]": "pw@acme.example"})  # fmt: skip
    assert no_password["debuginfo"] == (
        "Invalid password: you must provide a password, or set createpassword."
    )
    same_email = _ws(moodle_ws_server, "core_user_create_users", {
        "users[0][username]": "twin", "users[0][firstname]": "T", "users[0][lastname]": "W",
        "users[0][email]": "TAKEN@acme.example", "users[0][auth]": "oidc"})  # fmt: skip
    assert same_email["debuginfo"] == "Email address already exists: TAKEN@acme.example"
    extra_key = _ws(moodle_ws_server, "core_user_create_users", {
        "users[0][username]": "x", "users[0][firstname]": "X", "users[0][lastname]": "X",
        "users[0][email]": "x@acme.example", "users[0][suspended]": "1"})  # fmt: skip
    assert "Unexpected keys (suspended)" in extra_key["debuginfo"]


def test_update_suspends_and_reports_per_user_warnings(moodle_ws_server):
    ann = moodle_ws_server.add_user("ann", "ann@acme.example", auth="oidc", idnumber="1")
    moodle_ws_server.add_user("bob", "bob@acme.example")
    body = _ws(moodle_ws_server, "core_user_update_users", {
        "users[0][id]": str(ann), "users[0][suspended]": "1", "users[0][department]": "Gone",
        "users[1][id]": "999", "users[1][suspended]": "1",
        "users[2][id]": str(ann), "users[2][email]": "bob@acme.example",
    })  # fmt: skip
    assert body == {"warnings": [
        {"item": "user", "itemid": 999, "warningcode": "invaliduserid",
         "message": "Invalid user ID"},
        {"item": "user", "itemid": ann, "warningcode": "useremailduplicate",
         "message": "Duplicate address"},
    ]}  # fmt: skip
    updated = moodle_ws_server.user(ann)
    assert (updated.suspended, updated.department, updated.email) == (
        True,
        "Gone",
        "ann@acme.example",
    )
    not_bool = _ws(moodle_ws_server, "core_user_update_users",
                   {"users[0][id]": str(ann), "users[0][suspended]": "true"})  # fmt: skip
    assert not_bool["errorcode"] == "invalidparameter"


def test_outages_503_exception_and_refused_then_restore(moodle_ws_server):
    criteria = {"criteria[0][key]": "idnumber", "criteria[0][value]": "1"}
    moodle_ws_server.outage("503", times=1, after_calls=1)
    assert "users" in _ws(moodle_ws_server, "core_user_get_users", criteria)
    down = requests.post(moodle_ws_server.ws_url, data={"wstoken": DEFAULT_TOKEN}, timeout=5)
    assert down.status_code == 503
    moodle_ws_server.outage("exception", times=1)
    assert _ws(moodle_ws_server, "core_user_get_users", criteria)["errorcode"] == "sitemaintenance"
    assert "users" in _ws(moodle_ws_server, "core_user_get_users", criteria)

    moodle_ws_server.outage("refused")
    with pytest.raises(requests.ConnectionError):
        _ws(moodle_ws_server, "core_user_get_users", criteria)
    time.sleep(0.3)  # the listener closes in the background
    with pytest.raises(requests.ConnectionError, match="refused"):
        requests.post(moodle_ws_server.ws_url, data=criteria, timeout=5)
    moodle_ws_server.restore()
    assert "users" in _ws(moodle_ws_server, "core_user_get_users", criteria)
    # Logged: ok, exception, ok, the dropped call, ok; the refused one never arrived.
    assert moodle_ws_server.count("core_user_get_users") == 5


def test_xml_by_default_and_403_when_rest_is_off(moodle_ws_server):
    xml = requests.post(moodle_ws_server.ws_url, timeout=5, data={
        "wstoken": "bad", "wsfunction": "core_user_get_users"})  # fmt: skip
    assert '<EXCEPTION class="core\\exception\\moodle_exception">' in xml.text
    assert "<ERRORCODE>invalidtoken</ERRORCODE>" in xml.text
    moodle_ws_server.rest_enabled = False
    off = requests.post(moodle_ws_server.ws_url, data={"wstoken": DEFAULT_TOKEN}, timeout=5)
    assert (off.status_code, off.content) == (403, b"")
