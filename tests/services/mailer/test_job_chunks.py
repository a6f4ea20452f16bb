"""Jobs are split into chunks of the company's configured size unless a caller says otherwise."""

from common.mail.jobs import DEFAULT_CHUNK_SIZE, RecipientSpec, create_job
from tests.services.mailer.conftest import COMPANY_A, configure, job_row


def new_job(appdb, company_id, count, **kwargs):
    recipients = [RecipientSpec(email=f"l{i}@example.com", data={}) for i in range(count)]
    with appdb.transaction() as session:
        job = create_job(session, company_id=company_id, job_type="bulk", recipients=recipients,
                         source="ui", subject="Hi", html="<p>Hi</p>", **kwargs)  # fmt: skip
        return job.id


def test_the_companys_chunk_size_is_used(appdb):
    configure(appdb, COMPANY_A, "smtp", {"host": "127.0.0.1", "port": 25, "security": "none"},
              chunk_size=7)  # fmt: skip
    job = job_row(appdb, new_job(appdb, COMPANY_A, 30))
    assert (job.chunk_size, job.chunks_total) == (7, 5)


def test_a_company_without_settings_gets_the_default(appdb):
    job = job_row(appdb, new_job(appdb, 999, 30))
    assert job.chunk_size == DEFAULT_CHUNK_SIZE and job.chunks_total == 1


def test_an_explicit_chunk_size_wins(appdb):
    configure(appdb, COMPANY_A, "smtp", {"host": "127.0.0.1", "port": 25, "security": "none"},
              chunk_size=7)  # fmt: skip
    job = job_row(appdb, new_job(appdb, COMPANY_A, 30, chunk_size=10))
    assert (job.chunk_size, job.chunks_total) == (10, 3)
