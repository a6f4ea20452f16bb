"""Process entry: `manireports worker scheduler` or `python -m services.scheduler`."""

import sys

from common.runtime import run_service
from services.scheduler.worker import SchedulerWorker

if __name__ == "__main__":
    sys.exit(run_service(SchedulerWorker))
