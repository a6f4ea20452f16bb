"""The Moodle/IOMAD side: table definitions from schema.json and read-only site access.

`moodle_metadata(prefix)` / `MoodleTables(prefix)` describe the tables exactly as a real site has
them; `MoodleSource(url, prefix)` reads a site and tells which optional parts it has.
The demo-site generator lives in `common.moodle.demo`.
"""

from common.moodle.source import MoodleSource, SiteFeatures
from common.moodle.tables import MoodleTables, moodle_metadata

__all__ = ["MoodleSource", "MoodleTables", "SiteFeatures", "moodle_metadata"]
