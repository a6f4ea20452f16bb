"""Process entry: `manireports worker mailer` or `python -m services.mailer`."""

import sys

from common.runtime import run_service
from services.mailer.worker import MailerWorker

if __name__ == "__main__":
    sys.exit(run_service(MailerWorker))
