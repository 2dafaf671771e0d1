"""One settings object, read from SAMVERKAN_* variables at the entry point and passed down."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.errors import ConfigError

REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "process_templates"


class Settings(BaseSettings):
    """Configuration of one samverkan installation.

    Every field can be set with an environment variable named ``SAMVERKAN_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix="SAMVERKAN_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./samverkan.db",
        description="SQLAlchemy URL of the store (SQLite file or postgresql+psycopg://…).",
    )
    mail_dir: Path = Field(
        default=Path("./mail"),
        description="Maildir root used when no SMTP server is configured.",
    )
    smtp_url: str | None = Field(
        default=None,
        description="smtp://user:pass@host:587?starttls=true or smtps://host:465; unset = Maildir.",
    )
    smtp_timeout: float = Field(default=30.0, gt=0, description="Seconds per SMTP command.")
    sender: str = Field(
        default="samverkan@localhost",
        description="From address of every message; also the calendar ORGANIZER.",
    )
    sender_name: str = Field(default="Samverkan", description="Display name of the sender.")
    coordinator_email: str | None = Field(
        default=None, description="Where reflection summaries go (default: the sender)."
    )
    coordinator_language: str = Field(
        default="sv", pattern="^(sv|en)$", description="Language of the reflection email."
    )
    timezone: str = Field(
        default="Europe/Stockholm", description="Default time zone of new cycles."
    )
    templates_dir: Path = Field(
        default=REPO_TEMPLATES, description="Folder holding the process templates."
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Delivery attempts before a message is marked failed."
    )
    retry_base_seconds: float = Field(
        default=60.0, gt=0, description="First retry delay; doubles on each further attempt."
    )
    sending_lease_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A message claimed longer ago than this, and never marked sent, is uncertain.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def reflection_to(self) -> str:
        return self.coordinator_email or self.sender

    @property
    def mail_domain(self) -> str:
        return self.sender.rpartition("@")[2] or "localhost"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, turning bad values into a ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"SAMVERKAN_{field.upper()}: {first['msg']}") from None
