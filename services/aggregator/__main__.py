"""Process entry: `manireports worker aggregator` or `python -m services.aggregator`."""

import sys

from common.runtime import run_service
from services.aggregator.worker import AggregatorWorker

if __name__ == "__main__":
    sys.exit(run_service(AggregatorWorker))
