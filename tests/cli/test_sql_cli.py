"""`manireports sql validate|run` as a subprocess, against the two-company site on SQLite and
MariaDB: exit 0/1 with the reason, JSON lines in and out, rows as JSON or CSV within limits."""

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.conftest import BOTH_DATABASES, _empty_database
from tests.factories.sites import build_site
from tests.support import REPO, TEST_SECRET

SLOW = ("WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
        "SELECT COUNT(*) AS pairs FROM n a CROSS JOIN n b CROSS JOIN n c")  # fmt: skip
COMPANY_COURSES = """
    SELECT c.fullname
    FROM mdl_course c JOIN mdl_company_course cc ON cc.courseid = c.id
    WHERE cc.companyid = :companyid
    ORDER BY c.fullname
"""


def manireports(tmp_path, url, *args, stdin=None):
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path),
           "MOODLE_DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "cli.main", "sql", *args], env=env, cwd=REPO,
                          input=stdin, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module", params=BOTH_DATABASES)
def site(request, tmp_path_factory):
    """One two-company site per database for the module: `sql run` only reads it."""
    for url in _empty_database(request.param, tmp_path_factory.mktemp("moodle"), "moodle"):
        yield build_site(url)


@pytest.fixture
def no_db(tmp_path):
    """Validation needs no database: a URL that would fail if it were opened."""
    return f"sqlite:///{tmp_path / 'absent' / 'moodle.db'}"


def test_validate_reads_stdin_or_a_file_and_exits_0_or_1_with_the_reason(tmp_path, no_db):
    good = "SELECT u.id, u.email FROM {user} u WHERE u.email LIKE '%@x.org';\n"
    accepted = manireports(tmp_path, no_db, "validate", stdin=good)
    assert (accepted.returncode, accepted.stdout, accepted.stderr) == (0, "", "")
    query = tmp_path / "bad.sql"
    query.write_text("SELECT id\nFROM mdl_user u\nJOIN mdl_config c ON c.id = u.id")
    rejected = manireports(tmp_path, no_db, "validate", str(query))
    assert rejected.returncode == 1 and rejected.stdout == ""
    assert rejected.stderr.startswith("manireports: query rejected: ")
    assert "config" in rejected.stderr and rejected.stderr.count("\n") == 1
    stacked = manireports(tmp_path, no_db, "validate", stdin="SELECT 1; DROP TABLE mdl_user")
    assert stacked.returncode == 1 and "rejected" in stacked.stderr
    missing = manireports(tmp_path, no_db, "validate", str(tmp_path / "nope.sql"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_validate_jsonl_answers_one_line_per_line(tmp_path, no_db):
    lines = [json.dumps("SELECT id FROM mdl_course"), json.dumps("DELETE FROM mdl_user"),
             json.dumps({"sql": "SELECT 1"}), "not json at all", "",
             json.dumps("SELECT fullname FROM mdl_course WHERE shortname = 'drop@x'")]  # fmt: skip
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = manireports(tmp_path, no_db, "validate", "--jsonl", str(path))
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1, result.stderr
    assert len(answers) == len(lines)
    assert [a["ok"] for a in answers] == [True, False, False, False, False, True]
    assert answers[0] == {"ok": True} and answers[5] == {"ok": True}
    assert all(isinstance(a["error"], str) and a["error"] for a in answers if not a["ok"])
    assert "not a JSON string" in answers[2]["error"] and "not a JSON string" in answers[3]["error"]
    good = manireports(tmp_path, no_db, "validate", "--jsonl", stdin=lines[0] + "\n" + lines[5])
    assert (good.returncode, good.stdout) == (0, '{"ok": true}\n{"ok": true}\n')


def test_run_writes_json_or_csv_with_bound_parameters(tmp_path, site):
    acme = site.companies["A"]
    as_json = manireports(tmp_path, site.url, "run", "--format", "json",
                          "--param", f"companyid={acme}", stdin=COMPANY_COURSES)  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    expected = sorted(n for n, c in site.course_company.items() if c == "A")
    assert document["columns"] == ["fullname"]
    assert document["rows"] == [[name] for name in expected]
    assert document["truncated"] is False
    query = tmp_path / "q.sql"
    query.write_text("SELECT id, username FROM mdl_user WHERE username = :name OR id = :uid")
    as_csv = manireports(tmp_path, site.url, "run", str(query), "--param", "name=ana",
                         "--param", "uid=2", "--param-type", "uid=int")  # fmt: skip
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0] == ["id", "username"]
    assert sorted(table[1:]) == sorted([[str(site.users["ana"]), "ana"], ["2", "admin"]])


def test_a_value_carrying_sql_stays_a_value(tmp_path, site):
    for value in ("' OR '1'='1", "'; DROP TABLE mdl_user; --", "\u2019 OR 1=1 --"):
        result = manireports(tmp_path, site.url, "run", "--format", "json", "--param",
                             f"name={value}",
                             stdin="SELECT id FROM mdl_user WHERE username = :name")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["rows"] == []
    still = manireports(tmp_path, site.url, "run", stdin="SELECT username FROM mdl_user")
    assert still.returncode == 0, still.stderr
    assert set(site.users) - site.deleted <= set(still.stdout.splitlines()[1:])


def test_the_company_is_fixed_to_what_company_says(tmp_path, site):
    acme, bolt = site.companies["A"], site.companies["B"]
    fixed = manireports(tmp_path, site.url, "run", "--company", str(bolt), stdin=COMPANY_COURSES)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.splitlines()[1:] == ["Forklift"]
    overridden = manireports(tmp_path, site.url, "run", "--company", str(bolt), "--param",
                             f"companyid={acme}", stdin=COMPANY_COURSES)  # fmt: skip
    assert overridden.returncode == 2 and overridden.stdout == ""
    assert overridden.stderr == (
        f"manireports: --param companyid: Company is fixed to your company ({bolt}) and cannot "
        "be changed\n")  # fmt: skip


def test_rejection_and_timeout_exit_1_with_one_clear_line(tmp_path, site):
    rejected = manireports(tmp_path, site.url, "run", stdin="SELECT value FROM mdl_config")
    assert rejected.returncode == 1 and rejected.stdout == ""
    assert (
        rejected.stderr.startswith("manireports: query rejected: ") and "config" in rejected.stderr
    )
    slow = manireports(tmp_path, site.url, "run", "--timeout", "0.5", stdin=SLOW)
    assert (slow.returncode, slow.stdout) == (1, "")
    assert slow.stderr.endswith(
        "manireports: the query ran past its time limit of 0.5 s and was stopped (--timeout)\n"
    )


def test_a_bad_option_or_value_exits_2_with_one_line_naming_it(tmp_path, no_db):
    for args, message in (
        (["--param", "uid=x", "--param-type", "uid=int"], "--param uid: 'x' is not a whole number"),
        (["--param", "nope=1"], "--param: the query has no parameter :nope (:uid)"),
        (["--param", "uid"], "--param: 'uid' is not NAME=VALUE"),
        ([], "--param uid: Uid is required"),
        (["--param", "uid=1", "--param-type", "uid=sql"], "--param-type: 'uid=sql' is not"),
    ):  # fmt: skip
        bad = manireports(tmp_path, no_db, "run", *args,
                          stdin="SELECT id FROM mdl_user WHERE id = :uid")  # fmt: skip
        assert (bad.returncode, bad.stderr.count("\n")) == (2, 1), (args, bad.stderr)
        assert bad.stderr.startswith(f"manireports: {message}"), bad.stderr
    timeout = manireports(tmp_path, no_db, "run", "--timeout", "0", stdin="SELECT 1")
    assert timeout.returncode == 2 and "--timeout" in timeout.stderr


def test_max_rows_cuts_and_says_so_on_stderr(tmp_path, site):
    result = manireports(tmp_path, site.url, "run", "--format", "json", "--max-rows", "2",
                         stdin="SELECT id FROM mdl_user ORDER BY id")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (len(document["rows"]), document["truncated"]) == (2, True)
    assert result.stderr == "manireports: only the first 2 rows (--max-rows)\n"


@pytest.fixture(scope="module", params=BOTH_DATABASES)
def demo_url(request, tmp_path_factory):
    """A small seeded demo site (`manireports demo seed`), on SQLite and on MariaDB."""
    tmp = tmp_path_factory.mktemp("demo")
    for url in _empty_database(request.param, tmp, "demo"):
        env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp), "SECRET_KEY": TEST_SECRET}
        seeded = subprocess.run([sys.executable, "-m", "cli.main", "demo", "seed", "--url", url,
                                 "--users", "60", "--courses", "4", "--companies", "2",
                                 "--days", "3"], env=env, cwd=REPO, capture_output=True,
                                text=True, timeout=600)  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr
        yield url


def test_on_a_seeded_demo_site_a_big_join_is_stopped_and_a_report_runs(tmp_path, demo_url):
    three_way = """
        SELECT COUNT(*) AS n FROM mdl_logstore_standard_log a
        CROSS JOIN mdl_logstore_standard_log b CROSS JOIN mdl_logstore_standard_log c
    """
    slow = manireports(tmp_path, demo_url, "run", "--timeout", "1", stdin=three_way)
    assert (slow.returncode, slow.stdout) == (1, "")
    assert "time limit of 1 s and was stopped" in slow.stderr
    per_course = """
        SELECT c.fullname, COUNT(l.id) AS events
        FROM {course} c JOIN {logstore_standard_log} l ON l.courseid = c.id
        WHERE l.timecreated >= :since AND l.userid <> :skip
        GROUP BY c.fullname ORDER BY events DESC, c.fullname
    """
    report = manireports(tmp_path, demo_url, "run", "--format", "json", "--param", "since=0",
                         "--param-type", "since=int", "--param", "skip=0",
                         "--param-type", "skip=int", stdin=per_course)  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    assert rows and all(isinstance(events, int) and events > 0 for _, events in rows)
    assert [events for _, events in rows] == sorted((e for _, e in rows), reverse=True)
