"""Importing the network's participants from CSV: all rows or none."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from sqlalchemy import Engine

from store import queries
from store.db import session_scope
from store.errors import ImportRejected, InvalidInput
from store.models import Language, Role

COLUMNS = ("name", "email", "organisation", "role", "language")
ROLES = ", ".join(r.value for r in Role)
LANGS = ", ".join(lang.value for lang in Language)


@dataclass(frozen=True)
class Row:
    line: int
    name: str
    email: str
    organisation: str
    role: Role
    language: Language


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


def _has_control(text: str) -> bool:
    # Printable text (most names) has none of these categories (str.isprintable is false for
    # every "Other" and "Separator" character), so only the rest is looked at per character:
    # about 0.2 µs a name instead of 2.6 µs (timeit over the names of python -m benchmarks
    # import).
    if text.isprintable():
        return False
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in text)


# Addresses that email_validator accepts and leaves as they are, except that the domain is
# lower-cased: an ASCII dot-atom before the @, dotted labels of letters, digits and inner
# hyphens after it (each at most 63 characters), ending in a letter. Everything else (and
# the few of these it treats differently, below) goes to email_validator itself, so what is
# accepted, how it is normalised and every error message stay its own; test_participants
# checks the two agree on many generated addresses.
# Measured on the addresses of python -m benchmarks import (timeit, a shared 2-core machine):
# email_validator takes 70-80 µs an address, this check about 4 µs; with it, parse_csv reads
# and checks the 50,000 rows in 0.4-0.7 s instead of about 7 s.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
_PLAIN_EMAIL = re.compile(
    rf"(?P<local>{_ATEXT}+(?:\.{_ATEXT}+)*)@(?P<domain>(?:{_LABEL}\.)+{_TOP_LABEL})"
)
# email_validator's list as it stands when samverkan starts (samverkan never changes it).
_SPECIAL_USE = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)


def plain_email(email: str) -> str | None:
    """``email`` as email_validator would normalise it, for a plain ASCII address; None when
    it is not one (then only email_validator can say)."""
    if len(email) > EMAIL_MAX_LENGTH:
        return None
    match = _PLAIN_EMAIL.fullmatch(email)
    if match is None:
        return None
    local, domain = match.group("local", "domain")
    domain = domain.lower()
    # "xn--" labels are IDNA and other "ab--" labels are refused; role mailboxes such as
    # Info@ are lower-cased; special-use names (.local, .test, ...) and their subdomains are
    # refused.
    if "--" in domain or local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        return None
    if f".{domain}".endswith(_SPECIAL_USE):
        return None
    return f"{local}@{domain}"


def normalise_email(email: str) -> str:
    """The address as stored; raises EmailNotValidError with email_validator's reason."""
    return plain_email(email) or validate_email(email, check_deliverability=False).normalized


# Names of the members (what the file must say) to the member of that value.
_ROLES = {name: Role(name) for name in Role.__members__}
_LANGUAGES = {name: Language(name) for name in Language.__members__}


def parse_csv(data: bytes, *, source: str = "file") -> list[Row]:
    """Check every row; raise ImportRejected listing each bad row as ``line N: reason``."""
    try:
        text = data.decode("utf-8-sig")  # a BOM from spreadsheet programs is dropped
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{source} is not UTF-8 (byte {exc.start}): save it as 'CSV UTF-8' and try again"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{source} is empty: expected a header {','.join(COLUMNS)}") from None
    except csv.Error as exc:
        raise InvalidInput(f"{source}: line 1: {exc}") from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise InvalidInput(
            f"{source}: the header lacks {', '.join(missing)} (expected: {','.join(COLUMNS)})"
        )
    i_name, i_email, i_org, i_role, i_lang = (names.index(c) for c in COLUMNS)
    width = len(header)
    rows: list[Row] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1  # where the record starts (a quoted field may span lines)
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {line}: {exc}")
            break
        if not "".join(record).strip():  # no cell has anything but white space
            continue
        if len(record) != width:
            problems.append(f"line {line}: {len(record)} fields, the header has {width}")
            continue
        name = record[i_name].strip()
        given_email = record[i_email].strip()
        organisation = record[i_org].strip()
        given_role = record[i_role].strip()
        given_language = record[i_lang].strip()
        reasons = []
        if not name:
            reasons.append("empty name")
        elif _has_control(name):
            reasons.append("the name contains a line break or control character")
        if not organisation:
            reasons.append("empty organisation")
        elif _has_control(organisation):
            reasons.append("the organisation contains a line break or control character")
        email = given_email
        try:
            email = normalise_email(given_email)
        except EmailNotValidError as exc:
            reasons.append(f"bad email {given_email!r}: {exc}")
        role = _ROLES.get(given_role.lower())
        if role is None:
            reasons.append(f"unknown role {given_role!r} (use one of: {ROLES})")
        language = _LANGUAGES.get(given_language.lower() or "sv")
        if language is None:
            reasons.append(f"unknown language {given_language!r} (use one of: {LANGS})")
        key = email.lower()
        if not reasons and key in seen:
            reasons.append(f"{email} is already on line {seen[key]}")
        if reasons or role is None or language is None:
            problems.append(f"line {line}: " + "; ".join(reasons))
            continue
        seen[key] = line
        rows.append(Row(line, name, email, organisation, role, language))
    if problems:
        raise ImportRejected(problems)
    if not rows:
        raise InvalidInput(f"{source} has a header but no participants")
    return rows


def import_participants(engine: Engine, path: Path) -> ImportResult:
    """Import or update every participant of ``path`` in one transaction."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path} is a folder, not a CSV file") from None
    rows = parse_csv(data, source=str(path))
    # A few statements whatever the file's size: the organisations (looked up, the missing
    # ones added), the participants already known by email key, then one INSERT for the new
    # and one UPDATE for the known ones. Row by row through the ORM, with a look-up of both
    # for each row, 50,000 new participants took 87 s on SQLite and 168 s on PostgreSQL
    # (python -m benchmarks import).
    with session_scope(engine) as session:
        orgs = queries.create_organisations(session, names=(r.organisation for r in rows))
        known = queries.participant_ids(session, email_keys=(r.email.lower() for r in rows))
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for row in rows:
            values = {
                "name": row.name,
                "email": row.email,
                "organisation_id": orgs[row.organisation],
                "role": row.role.value,
                "language": row.language.value,
            }
            key = row.email.lower()
            if key in known:
                values["id"] = known[key]
                changed.append(values)
            else:
                values["email_key"] = key
                new.append(values)
        queries.insert_participants(session, rows=new)
        queries.update_participants(session, rows=changed)
        created, updated = len(new), len(changed)
        queries.audit(
            session,
            cycle_id=None,
            action="participants.import",
            detail=f"{path}: {created} new, {updated} updated",
        )
    return ImportResult(created=created, updated=updated)
