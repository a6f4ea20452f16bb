"""App DB model of the Google Classroom roster sync: its settings (one row; the service
account key encrypted at rest) and which Classroom course each Moodle course is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

SETTINGS_ROW = 1


class ClassroomConfig(Base):
    """What an admin saved on the Classroom page; environment variables win over each field."""

    __tablename__ = "manireports_classroom_config"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    admin_email: Mapped[str] = mapped_column(String(254), default="")  # whom the key acts as
    # The stored key's service account (client_email): what the page may show of the key.
    key_client_email: Mapped[str] = mapped_column(String(254), default="")
    # The service account's JSON key as Fernet ciphertext (common.secrets); never shown.
    secrets: Mapped[str] = mapped_column(Text, default="")
    modifiedby: Mapped[int | None] = mapped_column(BigInteger)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClassroomCourse(Base):
    """One Moodle course's Classroom course: its roster follows the Moodle enrolments."""

    __tablename__ = "manireports_classroom_courses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    moodle_course_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    classroom_course_id: Mapped[str] = mapped_column(String(100))
    createdby: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
