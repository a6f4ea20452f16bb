"""Moodle web-service tokens (`external_tokens`) accepted by the JSON API, checked as Moodle does.

A site's integrations often hold a Moodle token already; the API takes it as
`Authorization: Bearer <token>` and acts as the token's user, exactly as a ManiReports token
does (their capabilities and companies, re-read on every request), but read-only: a Moodle
token carries the `reports:read` scope and nothing else.

The checks follow Moodle's own (webservice/lib.php `authenticate_by_token` and
`load_function_info`, webservice/rest/server.php):

- the token exists with `tokentype` 0 (EXTERNAL_TOKEN_PERMANENT, lib/externallib.php); Moodle
  stores tokens in clear, so the row is found by the exact value with a bound parameter and the
  match is confirmed in constant time (MariaDB's default collation compares case-insensitively);
- `validuntil` is 0/empty or not yet passed; a token bound to a browser session (`sid`) is
  refused (ManiReports does not read Moodle's sessions);
- `iprestriction`, if set, lists the caller's address (`address_in_subnet`);
- web services are enabled on the site (config `enablewebservices` = 1) and the token's service
  is enabled (`external_services.enabled` = 1); a service with `restrictedusers` lists the user in
  `external_services_users`, whose own `validuntil` and `iprestriction` apply too;
- the user is not deleted, suspended, unconfirmed or `auth=nologin` (the API then loads them
  with `load_viewer`, which refuses anyone who can no longer sign in).

What is not followed: Moodle deletes an expired token and writes `lastaccess` on each use;
ManiReports reads the Moodle database read-only and changes neither. A service's
`requiredcapability` and the token's `contextid` gate Moodle's own functions, which the API
does not call: what the token's user may see here is decided by ManiReports' capabilities.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import time
from dataclasses import dataclass

from sqlalchemy import and_, select

from common.moodle import MoodleSource

EXTERNAL_TOKEN_PERMANENT = 0  # lib/externallib.php
# webservice/rest/server.php reads wstoken as PARAM_ALPHANUM; external_tokens.token is char(128).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9]{1,128}")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class MoodleToken:
    """An accepted Moodle token: whose it is and which service issued it (never its value)."""

    id: int
    userid: int
    service_id: int
    service: str
    # Moodle tokens are not restricted to a company: the user's own companies apply.
    companyid: int | None = None

    @property
    def prefix(self) -> str:
        """How audit lines name the token: its row id, no part of the secret."""
        return f"moodle#{self.id}"


@dataclass(frozen=True)
class MoodleTokenCheck:
    """The outcome of presenting a token: the token when accepted, else why not (for the
    audit; never the token itself) and, when known, whose token it was."""

    token: MoodleToken | None
    refusal: str | None = None
    user_id: int | None = None


def _refused(reason: str, user_id: int | None = None) -> MoodleTokenCheck:
    return MoodleTokenCheck(None, reason, user_id)


def _expired(validuntil: int | None, now: int) -> bool:
    return bool(validuntil) and int(validuntil or 0) < now


def check_moodle_token(
    source: MoodleSource, presented: str, ip: str | None, now: int | None = None
) -> MoodleTokenCheck:
    """Whether ``presented`` is a Moodle token usable now from ``ip``, and if so whose."""
    if not _TOKEN_SHAPE.fullmatch(presented):
        return _refused("malformed token")
    now = int(time.time()) if now is None else now
    t = source.tables
    tokens, services, user = t.external_tokens, t.external_services, t.user
    query = (
        select(
            tokens.c.id, tokens.c.token, tokens.c.userid, tokens.c.externalserviceid,
            tokens.c.sid, tokens.c.iprestriction, tokens.c.validuntil,
            services.c.enabled, services.c.restrictedusers, services.c.name.label("service"),
            user.c.id.label("user_row"), user.c.deleted, user.c.suspended, user.c.confirmed,
            user.c.auth,
        )
        .select_from(tokens)
        .outerjoin(services, services.c.id == tokens.c.externalserviceid)
        .outerjoin(user, user.c.id == tokens.c.userid)
        .where(tokens.c.token == presented, tokens.c.tokentype == EXTERNAL_TOKEN_PERMANENT)
    )  # fmt: skip
    with source.engine.connect() as conn:
        candidates = conn.execute(query).all()
        # The lookup may match case-insensitively; the constant-time comparison decides.
        row = None
        for candidate in candidates:
            if hmac.compare_digest(str(candidate.token).encode(), presented.encode()):
                row = candidate
        if row is None:
            return _refused("unknown Moodle token")
        label, user_id = f"moodle token #{row.id}", int(row.userid)
        if _expired(row.validuntil, now):
            return _refused(f"{label}: expired (validuntil)", user_id)
        if row.sid:
            return _refused(f"{label}: bound to a Moodle browser session", user_id)
        if (row.iprestriction or "").strip() and not address_in_subnet(ip, row.iprestriction):
            return _refused(f"{label}: address {ip} not in its iprestriction", user_id)
        if row.enabled is None or int(row.enabled) != 1:
            return _refused(f"{label}: its web service is disabled", user_id)
        if row.user_row is None or int(row.deleted):
            return _refused(f"{label}: the user is deleted", user_id)
        if int(row.suspended):
            return _refused(f"{label}: the user is suspended", user_id)
        if not int(row.confirmed) or row.auth == "nologin":
            return _refused(f"{label}: the user may not sign in", user_id)
        if int(row.restrictedusers) and not _service_user_allowed(
            conn, source, int(row.externalserviceid), user_id, ip, now
        ):
            return _refused(f"{label}: the user is not allowed on its restricted service", user_id)
        config = t.config
        enabled = conn.scalar(select(config.c.value).where(config.c.name == "enablewebservices"))
        if str(enabled or "").strip() != "1":
            return _refused(f"{label}: web services are disabled on the Moodle site", user_id)
    return MoodleTokenCheck(
        MoodleToken(id=int(row.id), userid=user_id, service_id=int(row.externalserviceid),
                    service=str(row.service))
    )  # fmt: skip


def _service_user_allowed(  # type: ignore[no-untyped-def]
    conn, source: MoodleSource, service_id: int, user_id: int, ip: str | None, now: int
) -> bool:
    """A restricted service's `external_services_users` row for the user, still valid and
    allowing ``ip``. (Moodle's query reads `validuntil < now` here, the opposite of the token's
    own check; this takes the meaning the admin form gives it: valid until that time.)"""
    allowed = source.tables.external_services_users
    rows = conn.execute(
        select(allowed.c.validuntil, allowed.c.iprestriction).where(
            and_(allowed.c.externalserviceid == service_id, allowed.c.userid == user_id)
        )
    ).all()
    return any(
        not _expired(r.validuntil, now)
        and (not (r.iprestriction or "").strip() or address_in_subnet(ip, r.iprestriction))
        for r in rows
    )


def address_in_subnet(address: str | None, restriction: str) -> bool:
    """Whether ``address`` matches one entry of a comma-separated Moodle IP restriction.

    Entries as Moodle's `address_in_subnet` reads them: an exact address (IPv4 or IPv6),
    CIDR (`10.1.0.0/16`, `2001:db8::/32`), an IPv4 range in the last group (`10.1.2.10-20`)
    and leading IPv4 groups (`10.1` or `10.1.`). Any other entry matches nothing, so a
    restriction this cannot read refuses the token rather than letting it through.
    """
    if not address:
        return False
    try:
        ip: IPAddress = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(_entry_matches(ip, entry.strip()) for entry in restriction.split(","))


def _entry_matches(ip: IPAddress, entry: str) -> bool:
    if not entry:
        return False
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
        return ip.version == network.version and ip in network
    if "-" in entry:
        start, _, end = entry.partition("-")
        try:
            first = ipaddress.IPv4Address(start.strip())
        except ValueError:
            return False
        end = end.strip()
        if ip.version != 4 or not end.isascii() or not end.isdigit() or int(end) > 255:
            return False
        return ip.packed[:3] == first.packed[:3] and first.packed[3] <= ip.packed[3] <= int(end)
    try:
        return ip == ipaddress.ip_address(entry)
    except ValueError:
        pass
    groups = entry.removesuffix(".").split(".")
    if ip.version != 4 or not 1 <= len(groups) <= 3:
        return False
    if not all(g.isascii() and g.isdigit() and len(g) <= 3 and int(g) <= 255 for g in groups):
        return False
    return list(ip.packed[: len(groups)]) == [int(g) for g in groups]
