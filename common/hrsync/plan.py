"""What one run would do to each changed employee's Moodle user, decided before anything is
written (so the suspension guard and a dry run see the whole batch).

Only users of the synced set are touched: a Moodle user whose auth is the sync's auth plugin
and whose idnumber is the employee's (or, found by email, whose idnumber is still empty). Any
other user with the employee's idnumber or email (a hand-made account, another auth, another
employee's) is reported as skipped, never merged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from common.hrsync.bamboohr import BambooHR, Change
from common.hrsync.mapping import bamboohr_fields, moodle_fields
from common.hrsync.moodlews import MoodleWS
from common.hrsync.settings import IDENTITY_FIELDS, HrSyncSettings, field_names

CREATE, UPDATE, SUSPEND, UNSUSPEND, UNCHANGED, SKIP = (
    "create",
    "update",
    "suspend",
    "unsuspend",
    "unchanged",
    "skip",
)
STATUS_FIELDS = ["status", "employmentHistoryStatus", "terminationDate"]
COMPARED = ("username", "email", "idnumber", "firstname", "lastname", "department", "institution")


@dataclass
class Action:
    employee_id: str
    kind: str
    userid: int | None = None
    # Moodle field → (old, new); custom profile fields as "profile_field_<shortname>".
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # What a write sends: the new user's fields, or only the changed ones.
    send: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def diff_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "employee_id": self.employee_id,
            "action": self.kind,
            "userid": self.userid,
        }
        if self.changes:
            entry["changes"] = {
                name: {"old": old, "new": new} for name, (old, new) in self.changes.items()
            }
        if self.reason:
            entry["reason"] = self.reason
        return entry


def is_gone(record: Mapping[str, Any], today: date) -> bool:
    """Inactive, or terminated with a termination date today or past. A termination dated in
    the future leaves the account alone until that day."""
    if str(record.get("status") or "").strip().lower() == "inactive":
        return True
    ended = _date(record.get("terminationDate"))
    if ended is not None and ended <= today:
        return True
    terminated = str(record.get("employmentHistoryStatus") or "").strip().lower() == "terminated"
    return terminated and ended is None


def _date(raw: Any) -> date | None:
    text = str(raw or "").strip()[:10]
    if not text or text.startswith("0000"):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class Planner:
    def __init__(
        self,
        hr: HrSyncSettings,
        bamboohr: BambooHR,
        moodle: MoodleWS,
        directory: Mapping[str, Mapping[str, Any]],
        today: date,
    ) -> None:
        self.hr = hr
        self.bamboohr = bamboohr
        self.moodle = moodle
        self.directory = directory
        self.today = today
        # What to ask BambooHR for (`id` always comes back, it is not a field to request).
        self.fields = [name for name in bamboohr_fields(hr.mapping) if name != "id"]
        self._claimed: dict[str, str] = {}  # email (lower) → employee planned with it this run
        self._shared = self._shared_emails()

    def _shared_emails(self) -> dict[str, list[str]]:
        """Emails several active employees have, from the directory (when it carries the
        email's field): none of them is merged into another's account."""
        by_email: dict[str, list[str]] = defaultdict(list)
        for employee_id, record in self.directory.items():
            email = moodle_fields(record, self.hr.mapping)["email"].lower()
            if email:
                by_email[email].append(employee_id)
        return {email: ids for email, ids in by_email.items() if len(ids) > 1}

    def plan(self, change: Change) -> Action:
        employee_id = change.employee_id
        record = self.directory.get(employee_id)
        active = record is not None and change.action != "Deleted"
        if change.action == "Deleted":
            record = {"id": employee_id}
        elif record is None:
            # Not in the directory (which lists active people only): a termination, or a
            # record the directory does not show; its status decides.
            record = self.bamboohr.employee(employee_id, self.fields + STATUS_FIELDS)
            record = {"id": employee_id, **record}
            active = not is_gone(record, self.today)
        elif self._lacks_fields(record):
            fetched = self.bamboohr.employee(employee_id, self.fields)
            record = {**record, **fetched, "id": employee_id}
        if not active:
            return self._plan_suspend(employee_id, record)
        return self._plan_active(employee_id, record)

    def _lacks_fields(self, record: Mapping[str, Any]) -> bool:
        """Whether the directory record lacks a mapped field (none of its alternatives is
        there, e.g. a custom field the directory does not show): then the employee is read."""
        mapping = self.hr.mapping
        sources = [mapping[key] for key in IDENTITY_FIELDS] + list(mapping["profile"].values())
        return any(not any(name in record for name in field_names(source)) for source in sources)

    def _idnumber(self, record: Mapping[str, Any]) -> str:
        return moodle_fields(record, self.hr.mapping)["idnumber"]

    def _synced(self, user: Mapping[str, Any]) -> bool:
        return _text(user.get("auth")) == self.hr.auth

    def _plan_suspend(self, employee_id: str, record: Mapping[str, Any]) -> Action:
        idnumber = self._idnumber(record)
        if not idnumber and "id" in field_names(self.hr.mapping["idnumber"]):
            idnumber = employee_id
        if not idnumber:
            return Action(employee_id, SKIP, reason="left: no idnumber to find the Moodle user by")
        users = self.moodle.find_by_idnumber(idnumber)
        if not users:
            return Action(employee_id, UNCHANGED, reason="left: no Moodle user")
        if len(users) > 1:
            return Action(
                employee_id, SKIP, reason=f"several Moodle users have idnumber {idnumber}"
            )
        user = users[0]
        if not self._synced(user):
            return Action(
                employee_id,
                SKIP,
                int(user["id"]),
                reason=f"Moodle user {user['id']} (auth {_text(user.get('auth'))}) "
                "is not a synced account; left alone",
            )
        if user.get("suspended"):
            return Action(employee_id, UNCHANGED, int(user["id"]))
        return Action(
            employee_id,
            SUSPEND,
            int(user["id"]),
            changes={"suspended": (0, 1)},
            send={"suspended": True},
        )

    def _plan_active(self, employee_id: str, record: Mapping[str, Any]) -> Action:
        wanted = moodle_fields(record, self.hr.mapping)
        email = wanted["email"].lower()
        for name in ("idnumber", "email", "username"):
            if not wanted[name]:
                return Action(employee_id, SKIP, reason=f"no {name} in BambooHR")
        shared = [other for other in self._shared.get(email, []) if other != employee_id]
        if shared:
            return Action(
                employee_id,
                SKIP,
                reason=f"email {wanted['email']} is also employee "
                f"{', '.join(shared)}'s; not merged",
            )
        claimed = self._claimed.get(email)
        if claimed is not None and claimed != employee_id:
            return Action(
                employee_id,
                SKIP,
                reason=f"email {wanted['email']} is also employee {claimed}'s; not merged",
            )
        self._claimed[email] = employee_id
        user, skip = self._find_user(employee_id, wanted)
        if skip is not None:
            return skip
        if user is None:
            send = {k: v for k, v in wanted.items() if k != "customfields" and v != ""}
            send["customfields"] = {k: v for k, v in wanted["customfields"].items() if v}
            changes = {k: (None, v) for k, v in send.items() if k != "customfields"}
            changes.update(
                {f"profile_field_{k}": (None, v) for k, v in send["customfields"].items()}
            )
            return Action(employee_id, CREATE, None, changes, send)
        return self._plan_update(employee_id, user, wanted)

    def _find_user(
        self, employee_id: str, wanted: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, Action | None]:
        """The employee's Moodle user (by idnumber, then by email), or the reason to skip."""

        def skip(reason: str, user: Mapping[str, Any] | None = None) -> Action:
            return Action(employee_id, SKIP, int(user["id"]) if user else None, reason=reason)

        by_idnumber = self.moodle.find_by_idnumber(wanted["idnumber"])
        if len(by_idnumber) > 1:
            return None, skip(f"several Moodle users have idnumber {wanted['idnumber']}")
        if by_idnumber:
            user = by_idnumber[0]
            if not self._synced(user):
                return None, skip(
                    f"Moodle user {user['id']} has idnumber {wanted['idnumber']} "
                    f"but auth {_text(user.get('auth'))}; left alone",
                    user,
                )
            return user, None
        by_email = self.moodle.find_by_email(wanted["email"])
        if len(by_email) > 1:
            return None, skip(f"several Moodle users have email {wanted['email']}; not merged")
        if not by_email:
            return None, None
        user = by_email[0]
        if _text(user.get("idnumber")):
            return None, skip(
                f"email {wanted['email']} belongs to Moodle user {user['id']} "
                f"(idnumber {user.get('idnumber')}); not merged",
                user,
            )
        if not self._synced(user):
            return None, skip(
                f"email {wanted['email']} belongs to Moodle user {user['id']} "
                f"(auth {_text(user.get('auth'))}, no idnumber), not a synced "
                "account; left alone",
                user,
            )
        return user, None  # a synced account made before its idnumber: adopted

    def _plan_update(
        self, employee_id: str, user: Mapping[str, Any], wanted: Mapping[str, Any]
    ) -> Action:
        userid = int(user["id"])
        changes: dict[str, tuple[Any, Any]] = {}
        send: dict[str, Any] = {}
        for name in COMPARED:
            old = _text(user.get(name))
            if old != wanted[name]:
                changes[name] = (old, wanted[name])
                send[name] = wanted[name]
        current = {
            _text(f.get("shortname")): _text(f.get("value"))
            for f in user.get("customfields") or []
            if isinstance(f, dict)
        }
        custom = {}
        for shortname, value in wanted["customfields"].items():
            if current.get(shortname, "") != value:
                changes[f"profile_field_{shortname}"] = (current.get(shortname, ""), value)
                custom[shortname] = value
        if custom:
            send["customfields"] = custom
        if user.get("suspended"):
            changes["suspended"] = (1, 0)
            send["suspended"] = False
            return Action(employee_id, UNSUSPEND, userid, changes, send)
        return Action(employee_id, UPDATE if send else UNCHANGED, userid, changes, send)
