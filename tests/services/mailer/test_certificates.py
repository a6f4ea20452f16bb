"""Certificate jobs: a PDF per recipient, as an S3 link (moto) or as an attachment."""

from __future__ import annotations

import boto3
import requests

from tests.fakes.moto_server import CREDENTIALS, REGION
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    dispatch,
    mailer_env,
    make_job,
    smtp_config,
    wait_final,
)

CERT_HTML = "<p>{{firstname}}: your certificate for {{course}}.</p>{{#certificate_url}}" \
            "<a href=\"{{{certificate_url}}}\">download</a>{{/certificate_url}}"  # fmt: skip


def test_certificates_are_uploaded_to_s3_and_linked(
    tmp_path, fresh_nats, appdb, smtp_sink, moto_ses, spawn_service
):
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_ses.endpoint_url, **CREDENTIALS)
    s3.create_bucket(Bucket="certs")
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink), s3_bucket="certs",
              aws_region=REGION,
              aws_access_key_id=CREDENTIALS["aws_access_key_id"],
              aws_secret_access_key=CREDENTIALS["aws_secret_access_key"])  # fmt: skip
    job_id = make_job(appdb, 3, job_type="certificate", html=CERT_HTML,
                      payload={"variables": {"course": "Fire Safety"}})  # fmt: skip
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb, **moto_ses.env))
    dispatch(fresh_nats.url, job_id)
    assert wait_final(appdb, job_id).status == "completed"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="certs")["Contents"])
    assert len(keys) == 3 and all(k.startswith(f"certificates/{COMPANY_A}/{job_id}/") for k in keys)
    message = smtp_sink.received("learner1@learners.example")[0]
    assert "L1: your certificate for Fire Safety." in message.html
    link = message.html.split('href="')[1].split('"')[0].replace("&amp;", "&")
    pdf = requests.get(link, timeout=10)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_without_a_bucket_the_certificate_is_attached(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink))
    job_id = make_job(appdb, 2, job_type="certificate", html=CERT_HTML,
                      payload={"variables": {"course": "First Aid"}})  # fmt: skip
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb))
    dispatch(fresh_nats.url, job_id)
    assert wait_final(appdb, job_id).status == "completed"
    message = smtp_sink.received("learner0@learners.example")[0].message
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["certificate.pdf"]
    assert attachments[0].get_content().startswith(b"%PDF")
