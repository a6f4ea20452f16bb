"""A deterministic demo Moodle/IOMAD site of any size, for running and measuring ManiReports
without a real site (`manireports demo seed`).

Planning happens in memory (people, companies, catalogue, enrolments, progress), then the rows
are bulk-loaded; the log is simulated day by day. See `seed_site()`.
"""

from common.moodle.demo.passwords import DEMO_PASSWORD
from common.moodle.demo.seed import DemoLogin, DemoSizeError, SeedSummary, seed_site

__all__ = ["DEMO_PASSWORD", "DemoLogin", "DemoSizeError", "SeedSummary", "seed_site"]
