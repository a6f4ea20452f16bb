"""`manireports report run` prints the dashboard's rows, from SQLite or MariaDB."""

import csv
import io
import json
import subprocess
import sys
import time

from common.moodle import MoodleSource
from common.reports import RunContext, get_report, registered_reports
from common.reports.base import json_row
from common.tenancy import TenantScope
from tests.support import REPO, TEST_SECRET


def run_cli(tmp_path, site, *args):
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path),
           "MOODLE_DATABASE_URL": site.url, "SECRET_KEY": TEST_SECRET}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli.main", "report", "run", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip


def dashboard_rows(site, company=None, days=30):
    source = MoodleSource(site.url)
    try:
        scope = TenantScope(company_ids=None if company is None else (company,))
        report = get_report("course_completion")
        ctx = RunContext(source=source, scope=scope, now=int(time.time()))
        params = report.parse_params({"days": str(days)})
        return [json_row(r) for r in report.stream(ctx, params, report.page_request({}))]
    finally:
        source.dispose()


def test_json_output_matches_the_dashboard_rows(tmp_path, site):
    result = run_cli(tmp_path, site, "course_completion", "--format", "json", "--days", "90")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == dashboard_rows(site, days=90)


def test_csv_for_one_company(tmp_path, site):
    company = site.companies["B"]
    result = run_cli(tmp_path, site, "course_completion", "--company", str(company))
    assert result.returncode == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    expected = dashboard_rows(site, company=company)
    assert [row[0] for row in table[1:]] == [r["course"] for r in expected]
    assert "Fire Safety" not in result.stdout


def test_bad_arguments_are_one_clear_line(tmp_path, site):
    unknown = run_cli(tmp_path, site, "no_such_report")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("manireports: no report named 'no_such_report'")
    bad_days = run_cli(tmp_path, site, "course_completion", "--days", "45")
    assert (bad_days.returncode, bad_days.stderr.strip()) == (
        2, "manireports: --days: must be one of 30, 90")  # fmt: skip


def run_listing(tmp_path, site, *args):
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path),
           "MOODLE_DATABASE_URL": site.url, "SECRET_KEY": TEST_SECRET}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli.main", "report", "list", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_list_names_every_registered_report_with_its_parameters(tmp_path, site):
    listed = run_listing(tmp_path, site)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert set(lines) == {r.type_name for r in registered_reports()}
    assert "days=30|90" in lines["course_completion"]
    described = json.loads(run_listing(tmp_path, site, "--json").stdout)
    completion = next(r for r in described if r["name"] == "course_completion")
    assert [p["name"] for p in completion["parameters"]] == ["days", "course", "cohort"]


def test_param_output_and_sort_write_the_file(tmp_path, site):
    out = tmp_path / "completion.csv"
    result = run_cli(tmp_path, site, "course_completion", "--param", "days=90",
                     "--sort=-enrolled", "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    table = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    enrolled = [int(row[1]) for row in table[1:]]
    assert enrolled == sorted(enrolled, reverse=True)
    assert len(table) - 1 == len(dashboard_rows(site, days=90))


def test_a_bad_parameter_names_itself_on_one_line(tmp_path, site):
    for args, message in (
        (["--param", "colour=red"], "manireports: --param: course_completion has no parameter "
                                    "'colour' (cohort, course, days)"),
        (["--param", "days"], "manireports: --param: 'days' is not KEY=VALUE"),
        (["--param", "cohort=abc"], "manireports: --param cohort: must be an id"),
        (["--sort", "nope"], "manireports: --sort: 'nope' is not a sortable column"),
    ):  # fmt: skip
        result = run_cli(tmp_path, site, "course_completion", *args)
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr
