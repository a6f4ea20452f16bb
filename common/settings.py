"""One settings object for every process, read from environment variables.

Defaults describe the embedded run (SQLite files and a bundled nats-server under the instance
folder). A bad value raises SettingsError naming the variable; the CLI prints it as one line.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


ENVIRONMENTS = ("development", "production")
SUPPORTED_DB_BACKENDS = ("sqlite", "mysql", "mariadb", "postgresql")
# The one DB-API driver each server backend is used through (installed with the package).
_DRIVERS = {"mysql": "pymysql", "mariadb": "pymysql", "postgresql": "psycopg"}


@dataclass(frozen=True)
class Settings:
    environment: str
    instance_dir: Path
    database_url: str
    moodle_database_url: str
    moodle_prefix: str
    nats_url: str | None
    secret_key: str
    web_host: str
    web_port: int
    password_peppers: tuple[str, ...] = ()
    session_timeout_s: int = 1800
    time_tracking_enabled: bool = True
    # Analytics (issue 4): heartbeat gap that closes a session, token lifetime, origins that may
    # post beats, cache lifetime, optional xAPI/video sources, at-risk flag and notifications.
    heartbeat_timeout_s: int = 120
    heartbeat_token_ttl_s: int = 8 * 3600
    tracking_allowed_origins: tuple[str, ...] = ()
    # The lean heartbeat endpoint (`manireports beat`, issue 15): where it listens; the reverse
    # proxy sends /tracking/beat there.
    beat_host: str = "127.0.0.1"
    beat_port: int = 8001
    # Heartbeat tokens from a learner's Moodle session (issue 10): the session cookie's name,
    # the site's session handler (auto: read from its config table) and, for the Redis
    # handler, where its store is and the key prefix ($CFG->session_redis_prefix).
    moodle_session_cookie: str = "MoodleSession"
    moodle_session_handler: str = "auto"
    moodle_session_redis_url: str | None = None
    moodle_session_redis_prefix: str = ""
    cache_ttl_s: int = 3600
    analytics_xapi_enabled: bool = False
    analytics_video_enabled: bool = False
    risk_flag_score: int = 50
    risk_notify_managers: bool = False
    bus_ack_wait_s: int = 60
    mailer_concurrency: int = 4
    mailer_max_deliver: int = 8
    mailer_backoff_base_ms: int = 1000
    embedded_nats_port: int = 4250
    # Clustered bus (issue 15): how many servers hold a copy of each stream and KV bucket
    # (3 on a 3-node cluster: one server may fail without losing anything). Existing streams
    # and buckets are updated to it at start, not recreated.
    nats_replicas: int = 1
    # Prometheus /metrics (issue 15): each worker's HTTP port (0: off) and the address it
    # listens on; the bearer token a scrape must send (required by the web tier's /metrics,
    # which is off without it, and by the workers' when set).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    metrics_token: str | None = None
    scheduler_lease_ttl_s: int = 10
    task_intervals: dict[str, int] = field(default_factory=dict)
    # Mail (issue 8): provider endpoints are fixed; only the site points them elsewhere (test
    # doubles), and only the site (or a site admin, per company) allows private SMTP hosts.
    mail_ses_endpoint_url: str | None = None
    mail_sendgrid_base_url: str | None = None
    mail_mailgun_base_url: str | None = None
    mail_aws_endpoint_url: str | None = None
    mail_smtp_allow_private_hosts: bool = False
    # Sign-in (issue 8): web sessions end after LOGIN_IDLE_TIMEOUT_S without a request or
    # LOGIN_MAX_AGE_S after sign-in; only accounts of these Moodle auth plugins may sign in;
    # the number of reverse proxies whose X-Forwarded-* headers are trusted.
    login_idle_timeout_s: int = 7200
    login_max_age_s: int = 43200
    login_auth_plugins: tuple[str, ...] = ("manual", "email")
    trusted_proxies: int = 0
    # JSON API (issue 9): requests one token may make per minute (0: no limit).
    api_rate_limit_per_minute: int = 120
    # The address people reach the web tier at (links in email: unsubscribe); unset, the
    # WEB_HOST:WEB_PORT address.
    public_url: str | None = None
    # Reports (issue 11): report executions at once across every web replica (0: no limit).
    report_max_concurrent: int = 4
    # Retention (issue 12): days each kind of record is kept before the daily retention task
    # deletes it (0: kept forever). Audit log entries, report runs, cached dashboard data
    # (past its expiry), heartbeat time sessions, and an email job's recipients (addresses
    # and per-recipient data) once the job is finished.
    retention_audit_days: int = 365
    retention_report_runs_days: int = 90
    retention_cache_days: int = 7
    retention_heartbeat_days: int = 730
    retention_email_recipients_days: int = 90
    # Scheduled reports (issue 12): a failed run is retried 3 times after base, 2×, 4× this;
    # a run over the time limit is stopped as a timeout; a file over the attachment size is
    # sent as a link (valid for the link days); none is stored over the file size.
    schedule_retry_base_s: float = 60.0
    schedule_run_timeout_s: int = 600
    schedule_attach_max_kb: int = 5120
    schedule_max_file_mb: int = 50
    schedule_link_days: int = 7
    schedule_run_concurrency: int = 2  # runs one scheduler process works on at once
    # A scheduled task failing this many times in a row emails the site admins (once; and
    # once more when it recovers).
    task_alert_after_failures: int = 3
    # Identity mapping (issue 14): the Google Workspace domains mapped emails must be in (none:
    # not checked, a warning) and LMS source names accepted beside canvas, moodle, blackboard.
    google_workspace_domains: tuple[str, ...] = ()
    identity_sources: tuple[str, ...] = ()

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def public_base(self) -> str:
        """Where people reach the web tier (links in email): PUBLIC_URL, else its own address."""
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def embedded_nats(self) -> bool:
        return self.nats_url is None

    def with_overrides(self, **changes: object) -> Settings:
        values = {**self.__dict__, **changes}
        return Settings(**values)  # type: ignore[arg-type]


def _db_url(name: str, value: str) -> str:
    try:
        url: URL = make_url(value)
    except ArgumentError:
        raise SettingsError(f"{name}: cannot parse {value!r} as a database URL") from None
    backend = url.get_backend_name()
    if backend not in SUPPORTED_DB_BACKENDS:
        raise SettingsError(
            f"{name}: unsupported database {backend!r} "
            "(use sqlite:///, mysql+pymysql:// or postgresql+psycopg://)"
        )
    driver = _DRIVERS.get(backend)
    if driver and url.get_driver_name() != driver:
        raise SettingsError(f"{name}: use the {driver} driver ({backend}+{driver}://…)")
    return value


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: {value} is outside {low}..{high}")
    return value


def _float(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if not low <= value <= high:  # also refuses nan
        raise SettingsError(f"{name}: {value:g} is outside {low:g}..{high:g}")
    return value


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: {raw!r} is not a boolean (use true or false)")


def _nats_url(value: str | None) -> str | None:
    if not value:
        return None
    for server in value.split(","):
        if not server.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
            raise SettingsError(f"NATS_URL: {server.strip()!r} is not a nats:// or tls:// URL")
    return value


def _secret_key(env: dict[str, str], environment: str, instance_dir: Path) -> str:
    key = env.get("SECRET_KEY", "")
    if key:
        if environment == "production" and len(key) < 32:
            raise SettingsError("SECRET_KEY: must be at least 32 characters in production")
        return key
    if environment == "production":
        raise SettingsError("SECRET_KEY: required when MANIREPORTS_ENV=production")
    # Development: one random key per instance folder, so sessions survive restarts.
    key_file = instance_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _task_intervals(raw: str) -> dict[str, int]:
    """`name=seconds,name=seconds`: overrides of the scheduler's built-in task intervals."""
    intervals: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, seconds = item.partition("=")
        if not name or not seconds.isdigit() or int(seconds) < 1:
            raise SettingsError(f"TASK_INTERVALS: {item!r} is not name=seconds")
        intervals[name.strip()] = int(seconds)
    return intervals


def _http_url(env: dict[str, str], name: str) -> str | None:
    """An optional http(s) base URL such as http://127.0.0.1:5000 (no query or fragment)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    scheme, _, rest = raw.partition("://")
    host = rest.split("/", 1)[0]
    if scheme not in ("http", "https") or not host or any(c in raw for c in "?#@ "):
        raise SettingsError(f"{name}: {raw!r} is not an http:// or https:// URL")
    return raw.rstrip("/")


def _origins(raw: str) -> tuple[str, ...]:
    """`https://moodle.example.com,https://other.example.com`: scheme and host, no path."""
    origins = []
    for origin in filter(None, (part.strip().rstrip("/") for part in raw.split(","))):
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise SettingsError(
                f"TRACKING_ALLOWED_ORIGINS: {origin!r} is not an origin like https://moodle.example"
            )
        origins.append(origin)
    return tuple(origins)


def _auth_plugins(raw: str) -> tuple[str, ...]:
    """`manual,email`: Moodle auth plugins whose passwords are stored in `user.password`."""
    plugins = tuple(filter(None, (part.strip() for part in raw.split(","))))
    for plugin in plugins:
        if not plugin.replace("_", "").isalnum():
            raise SettingsError(f"LOGIN_AUTH_PLUGINS: {plugin!r} is not an auth plugin name")
    if not plugins:
        raise SettingsError("LOGIN_AUTH_PLUGINS: name at least one auth plugin (e.g. manual)")
    return plugins


MOODLE_SESSION_HANDLERS = ("auto", "database", "redis", "file", "memcached")


class _MoodleSessionSettings(TypedDict):
    moodle_session_cookie: str
    moodle_session_handler: str
    moodle_session_redis_url: str | None
    moodle_session_redis_prefix: str


def _moodle_session_settings(env: dict[str, str]) -> _MoodleSessionSettings:
    """MOODLE_SESSION_COOKIE, MOODLE_SESSION_HANDLER, MOODLE_SESSION_REDIS_URL and _PREFIX."""
    cookie = env.get("MOODLE_SESSION_COOKIE") or "MoodleSession"
    if not cookie.replace("_", "").isalnum():
        raise SettingsError(f"MOODLE_SESSION_COOKIE: {cookie!r} is not a cookie name")
    handler = (env.get("MOODLE_SESSION_HANDLER") or "auto").strip().lower()
    if handler not in MOODLE_SESSION_HANDLERS:
        choices = ", ".join(MOODLE_SESSION_HANDLERS)
        raise SettingsError(f"MOODLE_SESSION_HANDLER: {handler!r} is not one of {choices}")
    redis_url = env.get("MOODLE_SESSION_REDIS_URL", "").strip() or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"MOODLE_SESSION_REDIS_URL: {redis_url!r} is not a redis://, rediss:// or unix:// URL"
        )
    prefix = env.get("MOODLE_SESSION_REDIS_PREFIX", "")
    if len(prefix) > 64 or any(c.isspace() for c in prefix):
        raise SettingsError("MOODLE_SESSION_REDIS_PREFIX: at most 64 characters, no spaces")
    return _MoodleSessionSettings(
        moodle_session_cookie=cookie,
        moodle_session_handler=handler,
        moodle_session_redis_url=redis_url,
        moodle_session_redis_prefix=prefix,
    )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    environment = env.get("MANIREPORTS_ENV", "development")
    if environment not in ENVIRONMENTS:
        raise SettingsError(f"MANIREPORTS_ENV: {environment!r} is not one of {ENVIRONMENTS}")
    instance_dir = Path(env.get("MANIREPORTS_INSTANCE", "instance")).resolve()
    prefix = env.get("MOODLE_PREFIX", "mdl_")
    if not prefix.replace("_", "").isalnum() and prefix != "":
        raise SettingsError(f"MOODLE_PREFIX: {prefix!r} may hold only letters, digits and _")
    peppers = tuple(p for p in env.get("MOODLE_PASSWORD_PEPPERS", "").split(",") if p)
    return Settings(
        environment=environment,
        instance_dir=instance_dir,
        database_url=_db_url(
            "DATABASE_URL",
            env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'manireports.db'}",
        ),
        moodle_database_url=_db_url(
            "MOODLE_DATABASE_URL",
            env.get("MOODLE_DATABASE_URL") or f"sqlite:///{instance_dir / 'moodle-demo.db'}",
        ),
        moodle_prefix=prefix,
        nats_url=_nats_url(env.get("NATS_URL")),
        secret_key=_secret_key(env, environment, instance_dir),
        web_host=env.get("WEB_HOST", "127.0.0.1"),
        web_port=_int(env, "WEB_PORT", 8000, 1, 65535),
        password_peppers=peppers,
        session_timeout_s=_int(env, "SESSION_TIMEOUT", 1800, 60, 86400),
        time_tracking_enabled=_bool(env, "TIME_TRACKING_ENABLED", True),
        heartbeat_timeout_s=_int(env, "HEARTBEAT_TIMEOUT", 120, 40, 3600),
        heartbeat_token_ttl_s=_int(env, "HEARTBEAT_TOKEN_TTL_S", 8 * 3600, 300, 7 * 86400),
        tracking_allowed_origins=_origins(env.get("TRACKING_ALLOWED_ORIGINS", "")),
        beat_host=env.get("BEAT_HOST", "127.0.0.1"),
        beat_port=_int(env, "BEAT_PORT", 8001, 1, 65535),
        **_moodle_session_settings(env),
        cache_ttl_s=_int(env, "CACHE_TTL_S", 3600, 60, 7 * 86400),
        analytics_xapi_enabled=_bool(env, "ANALYTICS_XAPI_ENABLED", False),
        analytics_video_enabled=_bool(env, "ANALYTICS_VIDEO_ENABLED", False),
        risk_flag_score=_int(env, "RISK_FLAG_SCORE", 50, 1, 100),
        risk_notify_managers=_bool(env, "RISK_NOTIFY_MANAGERS", False),
        bus_ack_wait_s=_int(env, "BUS_ACK_WAIT_S", 60, 1, 3600),
        mailer_concurrency=_int(env, "MAILER_CONCURRENCY", 4, 1, 64),
        mailer_max_deliver=_int(env, "MAILER_MAX_DELIVER", 8, 1, 100),
        mailer_backoff_base_ms=_int(env, "MAILER_BACKOFF_BASE_MS", 1000, 1, 600_000),
        embedded_nats_port=_int(env, "EMBEDDED_NATS_PORT", 4250, 1, 65535),
        nats_replicas=_int(env, "NATS_REPLICAS", 1, 1, 5),
        metrics_port=_int(env, "METRICS_PORT", 0, 0, 65535),
        metrics_host=env.get("METRICS_HOST") or "127.0.0.1",
        metrics_token=_metrics_token(env.get("METRICS_TOKEN", "")),
        scheduler_lease_ttl_s=_int(env, "SCHEDULER_LEASE_TTL_S", 10, 2, 300),
        task_intervals=_task_intervals(env.get("TASK_INTERVALS", "")),
        mail_ses_endpoint_url=_http_url(env, "MAIL_SES_ENDPOINT_URL"),
        mail_sendgrid_base_url=_http_url(env, "MAIL_SENDGRID_BASE_URL"),
        mail_mailgun_base_url=_http_url(env, "MAIL_MAILGUN_BASE_URL"),
        mail_aws_endpoint_url=_http_url(env, "MAIL_AWS_ENDPOINT_URL"),
        mail_smtp_allow_private_hosts=_bool(env, "MAIL_SMTP_ALLOW_PRIVATE_HOSTS", False),
        login_idle_timeout_s=_int(env, "LOGIN_IDLE_TIMEOUT_S", 7200, 60, 7 * 86400),
        login_max_age_s=_int(env, "LOGIN_MAX_AGE_S", 43200, 300, 30 * 86400),
        login_auth_plugins=_auth_plugins(env.get("LOGIN_AUTH_PLUGINS") or "manual,email"),
        trusted_proxies=_int(env, "TRUSTED_PROXIES", 0, 0, 5),
        api_rate_limit_per_minute=_int(env, "API_RATE_LIMIT_PER_MINUTE", 120, 0, 1_000_000),
        public_url=_http_url(env, "PUBLIC_URL"),
        report_max_concurrent=_int(env, "REPORT_MAX_CONCURRENT", 4, 0, 256),
        retention_audit_days=_int(env, "RETENTION_AUDIT_DAYS", 365, 0, 36500),
        retention_report_runs_days=_int(env, "RETENTION_REPORT_RUNS_DAYS", 90, 0, 36500),
        retention_cache_days=_int(env, "RETENTION_CACHE_DAYS", 7, 0, 36500),
        retention_heartbeat_days=_int(env, "RETENTION_HEARTBEAT_DAYS", 730, 0, 36500),
        retention_email_recipients_days=_int(env, "RETENTION_EMAIL_RECIPIENTS_DAYS", 90, 0, 36500),
        schedule_retry_base_s=_float(env, "SCHEDULE_RETRY_BASE_S", 60.0, 0.01, 86400.0),
        schedule_run_timeout_s=_int(env, "SCHEDULE_RUN_TIMEOUT_S", 600, 1, 86400),
        schedule_attach_max_kb=_int(env, "SCHEDULE_ATTACH_MAX_KB", 5120, 0, 1_048_576),
        schedule_max_file_mb=_int(env, "SCHEDULE_MAX_FILE_MB", 50, 1, 1024),
        schedule_link_days=_int(env, "SCHEDULE_LINK_DAYS", 7, 1, 365),
        schedule_run_concurrency=_int(env, "SCHEDULE_RUN_CONCURRENCY", 2, 1, 32),
        task_alert_after_failures=_int(env, "TASK_ALERT_AFTER_FAILURES", 3, 1, 1000),
        google_workspace_domains=_names(env.get("GOOGLE_WORKSPACE_DOMAINS", "")),
        identity_sources=_names(env.get("IDENTITY_SOURCES", "")),
    )


def _names(raw: str) -> tuple[str, ...]:
    """`a.example,b.example`: lower-cased, blanks dropped."""
    return tuple(filter(None, (part.strip().lower() for part in raw.split(","))))


def _metrics_token(raw: str) -> str | None:
    token = raw.strip()
    if not token:
        return None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise SettingsError("METRICS_TOKEN: at least 16 characters, no spaces")
    return token
