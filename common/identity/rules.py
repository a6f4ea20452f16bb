"""What a mapping row must satisfy: the sources we know and the Workspace domains emails must
be in. Both come from the settings (`IDENTITY_SOURCES`, `GOOGLE_WORKSPACE_DOMAINS`)."""

from __future__ import annotations

from dataclasses import dataclass

from common.mail.addresses import address_problem
from common.settings import Settings

BUILT_IN_SOURCES = ("canvas", "moodle", "blackboard")
# The column widths of lms_identity_map / lms_identity_import.
MAX_LENGTHS = {"source": 50, "lms_user_id": 100, "google_email": 254, "full_name": 255}
DOMAINS_UNSET_WARNING = (
    "GOOGLE_WORKSPACE_DOMAINS is unset: email domains were not checked against the Workspace"
)


@dataclass(frozen=True)
class Rules:
    sources: tuple[str, ...]
    domains: tuple[str, ...]  # empty: any domain (with a warning)

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        extra = tuple(s for s in settings.identity_sources if s not in BUILT_IN_SOURCES)
        return cls(BUILT_IN_SOURCES + extra, settings.google_workspace_domains)

    @property
    def warnings(self) -> list[str]:
        return [] if self.domains else [DOMAINS_UNSET_WARNING]

    def source_problem(self, source: str) -> str | None:
        if source in self.sources:
            return None
        return f"unknown source {source!r} (known: {', '.join(self.sources)})"

    def email_problem(self, email: str) -> str | None:
        problem = address_problem(email)
        if problem:
            return problem
        domain = email.rpartition("@")[2].lower()
        if self.domains and domain not in self.domains:
            return f"domain {domain} is not a Google Workspace domain ({', '.join(self.domains)})"
        return None
