"""Which sign-in attempts may go ahead, decided so that a stranger cannot lock out the owner.

Before a password is checked, the attempt reserves a slot in its buckets (attempt_counters):

- **account + client** (5 per 15 min): the client is the browser's device id when it shows a
  device cookie for this account, otherwise its IP address. Reaching the limit locks only that
  pair.
- **address** (20 per 15 min, untrusted clients only): one address guessing across many
  accounts (credential stuffing).
- **account** (20 per 15 min, untrusted clients only): past it, untrusted attempts on the
  account are not refused but slowed to one a minute; a trusted device is never slowed.

A successful sign-in clears its pair and gives the other slots back, so the counters hold
failures (plus attempts in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from common.access.attempt_counters import AttemptCounters

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_CLIENT = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_UNTRUSTED_FAILURES_PER_ACCOUNT = 20
SLOWED_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Client:
    """Where an attempt comes from: its address, and its device id if the browser is trusted
    for the account being tried."""

    ip: str
    device: str | None = None

    @property
    def trusted(self) -> bool:
        return self.device is not None


@dataclass
class Admission:
    """Slots an admitted attempt holds, or (`refused`) why it was not admitted."""

    pair: str
    taken: list[str] = field(default_factory=list)
    refused: str | None = None


class SigninThrottle:
    def __init__(self, counters: AttemptCounters):
        self.counters = counters

    def admit(self, username: str, client: Client, now: datetime) -> Admission:
        who = f"device:{client.device}" if client.device else f"ip:{client.ip}"
        admission = Admission(pair=f"signin:pair:{username}:{who}")
        steps = [(admission.pair, MAX_FAILURES_PER_CLIENT, WINDOW, "too many failures here")]
        if not client.trusted:
            steps.append(
                (f"signin:address:{client.ip}", MAX_FAILURES_PER_ADDRESS, WINDOW,
                 "too many failures from this address")
            )  # fmt: skip
        for bucket, limit, window, reason in steps:
            if not self.counters.reserve(bucket, limit, window, now):
                return self._refuse(admission, reason)
            admission.taken.append(bucket)
        if client.trusted:
            return admission
        account = f"signin:account:{username}"
        if self.counters.reserve(account, MAX_UNTRUSTED_FAILURES_PER_ACCOUNT, WINDOW, now):
            admission.taken.append(account)
        elif not self.counters.reserve(f"signin:slowed:{username}", 1, SLOWED_INTERVAL, now):
            return self._refuse(admission, "account slowed after many failures")
        return admission

    def succeeded(self, admission: Admission) -> None:
        self.counters.clear(admission.pair)
        for bucket in admission.taken:
            if bucket != admission.pair:
                self.counters.release(bucket)

    def _refuse(self, admission: Admission, reason: str) -> Admission:
        for bucket in admission.taken:
            self.counters.release(bucket)
        admission.taken.clear()
        admission.refused = reason
        return admission
