"""The one syntax check every template goes through (editor, compose page, API, create_job):
each problem with its line and column, and nothing said about templates that are fine."""

from __future__ import annotations

import pytest

from common.mail.template_checks import syntax_issues, template_problem

GOOD = [
    "Hello {{ firstname }}, {{{body}}} {{&raw}} {{! a comment with }} braces }}",
    "{{#courses}}{{fullname}}{{/courses}}{{^courses}}none{{/courses}}",
    "{{=<% %>=}}<% firstname %> <%#a%><%/a%> {{ not a tag now",
    "{{user.first-name}} {{.}}",
    "plain text with a single { brace and }} closing ones",
]


@pytest.mark.parametrize("template", GOOD)
def test_good_templates_have_no_issues(template):
    assert syntax_issues(template) == []
    assert template_problem("html", template) is None


BAD = [
    ("<p>Hi {{firstname}</p> {{#license}}",
     [(1, 7, "the tag '{{firstname}</p>' is not closed with '}}' before the next tag"),
      (1, 24, "the section 'license' was never closed (add '{{/license}}')")]),
    ("Dear\n  {{name", [(2, 3, "the tag '{{name' is not closed with '}}' before the end")]),
    ("{{{body}}", [(1, 1, "the tag '{{{body}}' is not closed with '}}}' before the end")]),
    ("a\nb {{/x}}", [(2, 3, "'{{/x}}' closes a section that was not opened")]),
    ("{{#a}}\n{{#b}}\n{{/a}}",
     [(3, 1, "'{{/a}}' closes a section that was not opened here: 'b' (line 2) is the one open")]),
    ("{{first name}}", [(1, 1, "'first name' in '{{first name}}' is not a variable name")]),
    ("{{> header}}", [(1, 1, "partials ('{{> header}}') are not supported")]),
    ("x {{}}", [(1, 3, "empty tag '{{}}'")]),
    ("{{#}}", [(1, 1, "'{{#}}' needs a name")]),
    ("{{=<%>=}}", [(1, 1, "'{{=<%>=}}' should set two delimiters, as in '{{=<% %>=}}'")]),
]  # fmt: skip


@pytest.mark.parametrize(("template", "expected"), BAD)
def test_each_problem_is_named_with_its_line_and_column(template, expected):
    assert [(i.line, i.column, i.message) for i in syntax_issues(template)] == expected


def test_a_field_names_the_first_five_problems_and_counts_the_rest():
    said = template_problem("subject", "{{#a}}" * 7)
    assert said is not None
    assert said.count("was never closed") == 5 and said.endswith("; and 2 more")
