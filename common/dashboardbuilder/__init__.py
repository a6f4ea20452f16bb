"""Dashboards that administrators and company managers lay out themselves: widgets bound to
reports on a grid (`layout`), stored with their visibility enforced on every read (`store`)."""
