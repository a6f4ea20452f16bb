"""Stored custom reports: SQL an administrator wrote (or the builder generated), saved after
the validator accepted it and reached as the report `custom_<id>` wherever a report name is
taken — the page, data endpoint, exports, CLI and JSON API run it like any prebuilt report.

`store` saves, lists and deletes them (audited); `stored_report` turns a stored row into a
`common.reports.Report`; `catalog` finds a report by name among both kinds.
"""
