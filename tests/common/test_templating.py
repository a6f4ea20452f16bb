"""Mustache rendering against the spec's own test files, plus the limits email templates rely on.

The spec files under tests/data/mustache_spec/ are copied unchanged from the public
mustache/spec repository (see README.md there); their expectations are the test.
"""

import json
import time
from pathlib import Path

import pytest

from common.templating import (
    MAX_RENDERED_CHARS,
    PREVIEW_MAX_CHARS,
    RENDER_TIME_BUDGET_S,
    TemplateError,
    render,
    validate,
)

SPEC_DIR = Path(__file__).resolve().parent.parent / "data" / "mustache_spec"
SPEC_MODULES = ("interpolation", "sections", "inverted", "comments")


def _spec_cases() -> list:
    cases = []
    for module in SPEC_MODULES:
        spec = json.loads((SPEC_DIR / f"{module}.json").read_text(encoding="utf-8"))
        for case in spec["tests"]:
            cases.append(pytest.param(case, id=f"{module}: {case['name']}"))
    return cases


@pytest.mark.parametrize("case", _spec_cases())
def test_spec(case):
    assert render(case["template"], case["data"]) == case["expected"], case["desc"]


def test_every_spec_module_has_cases():
    counts = {
        module: len(json.loads((SPEC_DIR / f"{module}.json").read_text())["tests"])
        for module in SPEC_MODULES
    }
    assert all(counts.values()), counts


@pytest.mark.parametrize(
    "template",
    [
        "{{name.__class__}}",
        "{{name.upper}}",
        "{{#name.upper}}x{{/name.upper}}",
        "{{items.__len__}}",
        "{{#data.setdefault}}x{{/data.setdefault}}",
        "{{items.0}}",
    ],
)
def test_templates_reach_only_the_given_keys(template):
    variables = {"name": "Ada", "items": ["a"], "data": {}}

    assert render(template, variables) == ""
    assert variables == {"name": "Ada", "items": ["a"], "data": {}}


def test_plain_text_output_is_not_html_escaped():
    variables = {"company": "A&B", "title": "<Q1>"}

    assert render("{{company}}: {{title}}", variables, escape_html=False) == "A&B: <Q1>"


def test_html_output_escapes_quotes_for_attributes():
    assert render("<a title='{{t}}'>", {"t": "it's"}) == "<a title='it&#x27;s'>"


@pytest.mark.parametrize(
    ("template", "message_part"),
    [
        ("Hello {{#user}}{{name}}", 'the tag "user" was never closed'),
        ("{{#a}}{{/b}}", 'Trying to close tag "b"'),
        ("{{/a}}", 'Trying to close tag "a"'),
        ("Hi {{name", "unclosed tag"),
        ("{{{name}}", "triple mustache"),
        ("{{> footer}}", "partials"),
        ("{{}}", "empty tag"),
        ("{{#}}x{{/}}", "needs a name"),
    ],
)
def test_malformed_templates_raise_a_clear_error(template, message_part):
    with pytest.raises(TemplateError, match=message_part):
        validate(template)
    with pytest.raises(TemplateError, match=message_part):
        render(template, {})


def test_valid_template_passes_validation():
    validate("Dear {{first_name}},{{#courses}} {{fullname}}{{/courses}}{{^courses}}-{{/courses}}")


# -- limits: nested sections over lists multiply (list length ^ depth) --------------------------
FIVE_DEEP = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"  # 40^5 x's asked for
FORTY = {"l": list(range(40))}


def test_sections_nested_too_deep_are_refused_when_checked():
    six_deep = "{{#a}}" * 6 + "x" + "{{/a}}" * 6

    with pytest.raises(TemplateError, match="nested more than 5 deep"):
        validate(six_deep)
    validate("{{#a}}" * 5 + "x" + "{{/a}}" * 5)  # the spec's deepest case


def test_a_template_bomb_stops_at_the_size_limit_fast():
    started = time.monotonic()

    with pytest.raises(TemplateError, match="longer than 524,288 characters"):
        render(FIVE_DEEP, FORTY)

    assert time.monotonic() - started < RENDER_TIME_BUDGET_S + 1


def test_a_bomb_that_writes_nothing_stops_at_the_time_budget():
    silent = FIVE_DEEP.replace("x", "")
    started = time.monotonic()

    with pytest.raises(TemplateError, match="took too long"):
        render(silent, FORTY, time_budget_s=0.2)

    assert time.monotonic() - started < 1.0


def test_a_long_list_in_one_section_is_bounded_too():
    with pytest.raises(TemplateError, match="took too long"):
        render("{{#l}}{{/l}}", {"l": [1] * 10_000_000}, time_budget_s=0.05)


def test_the_size_limit_is_a_parameter_and_counts_variables_too():
    assert render("{{a}}", {"a": "x" * 100}, max_chars=100) == "x" * 100
    with pytest.raises(TemplateError, match="longer than 100 characters"):
        render("{{a}}!", {"a": "x" * 100}, max_chars=100)
    assert MAX_RENDERED_CHARS == 512 * 1024 and PREVIEW_MAX_CHARS == 256 * 1024
