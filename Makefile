# ManiReports — two commands: `make run` starts everything, `make test` checks everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
VENDOR := web/static/vendor
DEMO_USERS ?= 500
DEMO_COURSES ?= 20
DEMO_COMPANIES ?= 3
DEMO_DAYS ?= 90

.PHONY: run install vendor migrate seed test lint format bench clean browsers

run: install vendor migrate seed
	$(VENV)/bin/manireports up

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

# axe-core is for the browser tests only (tests/e2e/test_walk.py injects it); no page loads it.
vendor: $(VENDOR)/chart.umd.min.js $(VENDOR)/axe.min.js $(VENDOR)/gridstack-all.js

$(VENDOR)/chart.umd.min.js $(VENDOR)/axe.min.js $(VENDOR)/gridstack-all.js &: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/
	cp node_modules/axe-core/axe.min.js $(VENDOR)/
	cp node_modules/gridstack/dist/gridstack-all.js node_modules/gridstack/dist/gridstack.min.css $(VENDOR)/

migrate: install
	$(VENV)/bin/manireports db upgrade

seed: install
	@if [ ! -f instance/moodle-demo.db ] && [ -z "$$MOODLE_DATABASE_URL" ]; then \
		$(VENV)/bin/manireports demo seed --users $(DEMO_USERS) --courses $(DEMO_COURSES) \
			--companies $(DEMO_COMPANIES) --days $(DEMO_DAYS); \
	else echo "demo site exists (instance/moodle-demo.db) or MOODLE_DATABASE_URL is set: not seeding"; fi

# Real-browser tests need Debian's Chromium; installed here when missing and apt is usable.
browsers:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium not installed: browser tests will be skipped"; fi; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Three workers (pytest-xdist): most tests wait on MariaDB, nats-server or a browser, not the
# CPU, so even a 2-core machine runs the suite in about a third of the time. Every test has
# its own databases, nats-server and ports, so they do not meet.
test: install vendor browsers lint
	$(PY) -m pytest -q -n 3

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .ruff_cache .mypy_cache
