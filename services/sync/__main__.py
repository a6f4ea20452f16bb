"""Process entry: `manireports worker sync` or `python -m services.sync`."""

import sys

from common.runtime import run_service
from services.sync.worker import SyncWorker

if __name__ == "__main__":
    sys.exit(run_service(SyncWorker))
