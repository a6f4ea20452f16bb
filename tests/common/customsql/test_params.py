"""Custom SQL parameters: declared, parsed into typed values with errors naming the parameter,
`companyid` fixed to the company a report runs for, dropdowns limited to the viewer's scope."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from common.customsql.params import (
    FormInput,
    QueryParam,
    check_in_scope,
    declare_params,
    form_inputs,
    param_options,
    parse_param_values,
)
from common.customsql.validator import validate
from common.errors import FieldError
from common.moodle import MoodleSource
from common.tenancy import TenantScope

QUERY = """
    SELECT c.id, c.fullname, COUNT(ue.id) AS enrolled
    FROM mdl_course c
    JOIN mdl_company_course cc ON cc.courseid = c.id AND cc.companyid = :companyid
    LEFT JOIN mdl_enrol e ON e.courseid = c.id
    LEFT JOIN mdl_user_enrolments ue ON ue.enrolid = e.id AND ue.timestart >= :since
    WHERE c.id = :courseid OR c.shortname = :name OR :minimum <= 0
    GROUP BY c.id, c.fullname
"""


def declared(*stored: QueryParam) -> list[QueryParam]:
    return declare_params(validate(QUERY), list(stored))


def typed() -> list[QueryParam]:
    return declared(QueryParam("since", "date", "Since"),
                    QueryParam("courseid", "course", "Course"),
                    QueryParam("minimum", "int", "Minimum"))  # fmt: skip


def test_every_placeholder_is_declared_once_in_order_of_use():
    found = declared(QueryParam("since", "date", "Enrolled since"),
                     QueryParam("gone", "int", "No longer in the SQL"))  # fmt: skip
    assert [(p.name, p.type) for p in found] == [("companyid", "company"), ("since", "date"),
        ("courseid", "text"), ("name", "text"), ("minimum", "text")]  # fmt: skip
    assert found[1].label == "Enrolled since" and found[0].label == "Company"


def test_a_name_declared_twice_or_companyid_as_another_type_is_refused():
    with pytest.raises(FieldError, match="declared twice"):
        declared(QueryParam("name", "text", "A"), QueryParam("name", "int", "B"))
    with pytest.raises(FieldError, match="always a company"):
        declared(QueryParam("companyid", "int", "Company"))


def test_declarations_round_trip_through_json_and_bad_ones_say_what_is_wrong():
    param = QueryParam("since", "date", "Since", required=False, default="2026-01-31")
    assert QueryParam.from_json(param.as_json()) == param
    for data, message in (
        ({"name": "1; DROP", "type": "text"}, "not a parameter name"),
        ({"name": "x", "type": "sql"}, "type 'sql' is not one of"),
        ({"name": "x", "type": "int", "default": "ten"}, "'ten' is not a whole number"),
        ({"name": "x", "type": "text", "required": "yes"}, "true or false"),
        ("x", "must be an object"),
    ):  # fmt: skip
        with pytest.raises(FieldError, match=message):
            QueryParam.from_json(data)  # type: ignore[arg-type]


def test_values_are_parsed_into_their_types():
    raw = {"companyid": "7", "since": "2026-03-01", "courseid": " 12 ", "name": "Fire",
           "minimum": "-3"}  # fmt: skip
    values = parse_param_values(typed(), raw, bound_company=None)
    assert values == {"companyid": 7, "since": int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()),
                      "courseid": 12, "name": "Fire", "minimum": -3}  # fmt: skip


def test_a_date_is_the_start_of_that_day_in_the_viewers_timezone():
    zone = ZoneInfo("Australia/Perth")
    raw = {"companyid": "1", "since": "2026-03-01", "courseid": "2", "name": "x", "minimum": "0"}
    values = parse_param_values(typed(), raw, bound_company=None, zone=zone)
    assert values["since"] == int(datetime(2026, 3, 1, tzinfo=zone).timestamp())
    assert values["since"] == int(datetime(2026, 2, 28, 16, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("minimum", "1 OR 1=1", "'1 OR 1=1' is not a whole number"),
        ("minimum", "9" * 20, "is not a whole number"),
        ("minimum", "٣", "is not a whole number"),
        ("since", "2026-02-30", "'2026-02-30' is not a date (YYYY-MM-DD)"),
        ("since", "1 OR 1=1", "is not a date"),
        ("courseid", "4; DROP TABLE mdl_user", "must be an id"),
        ("courseid", "0", "must be an id"),
        ("companyid", "-1", "must be an id"),
        ("name", "x" * 1001, "at most 1000 characters"),
        ("name", "admin\x00' OR 1=1", "may not contain a NUL character"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_parameter(field, raw, message):
    good = {"companyid": "1", "since": "2026-03-01", "courseid": "2", "name": "x", "minimum": "0"}
    with pytest.raises(FieldError, match=re.escape(message)) as caught:
        parse_param_values(typed(), good | {field: raw}, bound_company=None)
    assert caught.value.field == field


def test_every_missing_required_value_is_named_and_optional_ones_bind_null():
    params = [QueryParam("a", "int", "First"), QueryParam("b", "date", "Second"),
              QueryParam("c", "text", "Third", required=False),
              QueryParam("d", "int", "Fourth", required=False, default="5")]  # fmt: skip
    with pytest.raises(FieldError) as caught:
        parse_param_values(params, {"a": "  ", "other": "ignored"}, bound_company=None)
    assert [(e.field, e.reason) for e in caught.value.errors] == [
        ("a", "First is required"), ("b", "Second is required")]  # fmt: skip
    values = parse_param_values(params, {"a": "1", "b": "2026-01-01"}, bound_company=None)
    assert (values["c"], values["d"]) == (None, 5)


def test_a_bound_company_is_the_value_and_cannot_be_overridden():
    params = typed()
    good = {"since": "2026-03-01", "courseid": "2", "name": "x", "minimum": "0"}
    assert parse_param_values(params, good, bound_company=4)["companyid"] == 4
    assert parse_param_values(params, good | {"companyid": "4"}, bound_company=4)["companyid"] == 4
    for other in ("5", "4 OR 1=1", "04"):
        with pytest.raises(FieldError, match=r"fixed to your company \(4\)") as caught:
            parse_param_values(params, good | {"companyid": other}, bound_company=4)
        assert caught.value.field == "companyid" and caught.value.status == 403


def test_every_company_parameter_is_bound_and_a_query_without_companyid_cannot_be_bound():
    params = [QueryParam("companyid", "company", "Company"),
              QueryParam("other", "company", "Other company")]  # fmt: skip
    assert parse_param_values(params, {}, bound_company=3) == {"companyid": 3, "other": 3}
    with pytest.raises(FieldError, match="fixed to your company"):
        parse_param_values(params, {"other": "9"}, bound_company=3)
    with pytest.raises(FieldError, match="must use the :companyid parameter"):
        parse_param_values([QueryParam("x", "int", "X")], {"x": "1"}, bound_company=3)


def test_form_inputs_fit_the_type_and_list_only_what_the_scope_sees(site):
    source = MoodleSource(site.url)
    try:
        acme = site.companies["A"]
        scope = TenantScope(company_ids=(acme,))
        raw = {"since": "2026-13-01", "name": "typed <b>"}  # kept as typed, even when bad
        inputs = {i.name: i for i in form_inputs(typed(), raw, source=source, scope=scope,
                                                 bound_company=acme)}  # fmt: skip
    finally:
        source.dispose()
    assert inputs["since"] == FormInput("since", "Since", "date", "2026-13-01", True)
    assert (inputs["minimum"].input, inputs["name"].input) == ("number", "text")
    assert inputs["name"].value == "typed <b>"
    courses = dict(inputs["courseid"].options)
    assert inputs["courseid"].input == "select" and courses[""] == "Choose…"
    assert {"Fire Safety", "First Aid", "Shared Ethics"} <= set(courses.values())
    assert "Forklift" not in courses.values()
    company = inputs["companyid"]
    assert (company.fixed, company.value, company.options) == (
        True,
        str(acme),
        ((str(acme), "Acme"),),
    )


def test_options_and_scope_check_keep_each_company_to_its_own(site):
    source = MoodleSource(site.url)
    acme, bolt = site.companies["A"], site.companies["B"]
    course = QueryParam("courseid", "course", "Course")
    company = QueryParam("companyid", "company", "Company")
    try:
        in_bolt = TenantScope(company_ids=(bolt,))
        assert [name for _, name in param_options(course, source, in_bolt)] == [
            "Forklift", "Shared Ethics"]  # fmt: skip
        assert param_options(company, source, in_bolt) == [(str(bolt), "Bolt")]
        every = param_options(company, source, TenantScope(company_ids=None))
        assert every == [(str(acme), "Acme"), (str(bolt), "Bolt")]
        fire = site.courses["Fire Safety"]
        check_in_scope([course, company], {"courseid": site.courses["Forklift"], "companyid": bolt},
                       source=source, scope=in_bolt)  # fmt: skip
        with pytest.raises(FieldError) as caught:
            check_in_scope([course, company], {"courseid": fire, "companyid": acme},
                           source=source, scope=in_bolt)  # fmt: skip
        assert [e.field for e in caught.value.errors] == ["courseid", "companyid"]
        assert caught.value.reason == f"Course {fire} is not one you may choose"
        check_in_scope([course], {"courseid": fire}, source=source,
                       scope=TenantScope(company_ids=None))  # fmt: skip
    finally:
        source.dispose()
