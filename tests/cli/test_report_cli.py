"""`manireports report run` prints the dashboard's rows, from SQLite or MariaDB."""

import csv
import io
import json
import subprocess
import sys
import time

from common.moodle import MoodleSource
from common.reports import RunContext, get_report
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
