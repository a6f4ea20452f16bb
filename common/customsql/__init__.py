"""Custom SQL reports: the validator (one read-only SELECT over Moodle's report tables), parameters
and execution on the Moodle connection."""
