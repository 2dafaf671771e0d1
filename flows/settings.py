"""One settings object, read from SAMVERKAN_* variables at the entry point and passed down."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from messaging import i18n
from store.errors import ConfigError


def _bundled_templates() -> Path:
    here = Path(__file__).resolve().parent
    installed = here / "process_templates"  # where a wheel puts them
    return installed if installed.is_dir() else here.parent / "process_templates"


# The process templates that come with samverkan: process_templates/ in a checkout.
REPO_TEMPLATES = _bundled_templates()


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
    smtp_concurrency: int = Field(
        default=8, ge=1, le=100, description="SMTP connections used side by side."
    )
    smtp_rate: float | None = Field(
        default=None, gt=0, description="At most this many messages a second (unset: no cap)."
    )
    smtp_rate_per_minute: int | None = Field(
        default=None, ge=1, description="At most this many messages a minute (unset: no cap)."
    )
    sender: str = Field(
        default="samverkan@localhost",
        description="From address of every message; also the calendar ORGANIZER.",
    )
    sender_name: str = Field(default="Samverkan", description="Display name of the sender.")
    coordinator_email: str | None = Field(
        default=None, description="Where reflection summaries go (default: the sender)."
    )
    coordinator_language: str = Field(
        default="sv",
        description="Language of the reflection email and the report (BCP 47: sv, en, fi, ar).",
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
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Address of `samverkan serve` as participants reach it, used in links.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs personal links; the same on every worker. Unset with SQLite: a "
        "key file beside the database is made on first use.",
    )
    min_group: int = Field(
        default=3, ge=1, description="Indicator groups smaller than this are not shown."
    )
    collaboration: str = Field(
        default="",
        description="This collaboration's name in indicator exports (schema 2), so that a "
        "regional or national view can tell collaborations apart, e.g. 'Samordningsförbundet "
        "Göteborg'.",
    )
    signoff_remind_after_hours: float = Field(
        default=48.0,
        gt=0,
        description="Hours after asking an organisation to sign before it is reminded (once).",
    )
    sending_lease_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A message claimed longer ago than this, and never marked sent, is uncertain.",
    )

    imap_url: str | None = Field(
        default=None,
        description="The coordinator's mailbox, read by `inbox fetch` and by every tick: "
        "imaps://user@host/INBOX (TLS from the first byte) or imap://user@host/INBOX "
        "(STARTTLS, required). The password comes from SAMVERKAN_IMAP_PASSWORD or "
        "SAMVERKAN_IMAP_PASSWORD_FILE, never from the address.",
    )
    imap_password: SecretStr | None = Field(
        default=None, description="Password of the IMAP account (or use the file below)."
    )
    imap_password_file: Path | None = Field(
        default=None, description="A file holding the IMAP account's password."
    )
    imap_ca_file: Path | None = Field(
        default=None,
        description="Certificates (PEM) to trust for the IMAP server, besides the system's.",
    )
    imap_move_to: str | None = Field(
        default=None,
        description="Move handled messages to this folder instead of flagging them in place.",
    )
    imap_poll_seconds: float = Field(
        default=60.0,
        gt=0,
        description="`inbox watch`: seconds between looks where the server has no IDLE.",
    )
    soft_bounce_limit: int = Field(
        default=3,
        ge=1,
        description="Temporary delivery failures (4.x.x) after which an address counts as bounced.",
    )

    @field_validator("smtp_url")
    @classmethod
    def _usable_smtp_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from messaging.transports.smtp import SMTPTransport

        try:
            SMTPTransport.from_url(value)  # parses only; connects on first send
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("SAMVERKAN_SMTP_URL").lstrip(": ")) from None
        return value

    @field_validator("coordinator_language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        return i18n.normalise(value)  # FI → fi; a ValueError names what is wrong

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def link_key(self) -> bytes:
        """The key that signs personal links (see messaging/links.py)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        if not self.database_url.startswith("sqlite:///"):
            raise ConfigError(
                "set SAMVERKAN_SECRET_KEY (the same on every worker) to send personal links "
                "with a shared database"
            )
        path = Path(self.database_url.removeprefix("sqlite:///")).with_suffix(".key")
        if not path.exists():
            import os
            import secrets

            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()

    @property
    def base(self) -> str:
        return self.base_url.rstrip("/")

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
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"SAMVERKAN_{field.upper()}: {message}") from None
