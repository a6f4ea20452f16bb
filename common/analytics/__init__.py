"""Analytics computations the aggregator runs and dashboards read: time on task (heartbeat
sessions and the log estimate), SCORM summaries, engagement, caches and at-risk scores.

Pure computation lives in small modules (`intervals`, `risk` scoring); the SQL that reads the
Moodle DB and writes the app DB sits beside it, one module per figure.
"""
