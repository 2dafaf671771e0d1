"""Importing the network's participants from CSV: all rows or none."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine

from store import queries
from store.db import session_scope
from store.errors import ImportRejected, InvalidInput
from store.models import Language, Participant, Role, pk
from store.types import utcnow

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
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in text)


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
    index = {c: names.index(c) for c in COLUMNS}
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
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.append(f"line {line}: {len(record)} fields, the header has {len(header)}")
            continue
        get = {c: record[i].strip() for c, i in index.items()}
        reasons = []
        if not get["name"]:
            reasons.append("empty name")
        elif _has_control(get["name"]):
            reasons.append("the name contains a line break or control character")
        if not get["organisation"]:
            reasons.append("empty organisation")
        elif _has_control(get["organisation"]):
            reasons.append("the organisation contains a line break or control character")
        email = get["email"]
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            reasons.append(f"bad email {get['email']!r}: {exc}")
        role = get["role"].lower()
        if role not in Role.__members__:
            reasons.append(f"unknown role {get['role']!r} (use one of: {ROLES})")
        language = get["language"].lower() or "sv"
        if language not in Language.__members__:
            reasons.append(f"unknown language {get['language']!r} (use one of: {LANGS})")
        if not reasons and email.lower() in seen:
            reasons.append(f"{email} is already on line {seen[email.lower()]}")
        if reasons:
            problems.append(f"line {line}: " + "; ".join(reasons))
            continue
        seen[email.lower()] = line
        rows.append(
            Row(line, get["name"], email, get["organisation"], Role(role), Language(language))
        )
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
    created = updated = 0
    with session_scope(engine) as session:
        for row in rows:
            org = queries.get_or_create_organisation(session, name=row.organisation)
            person = queries.find_participant(session, email=row.email)
            if person is None:
                session.add(
                    Participant(
                        name=row.name,
                        email=row.email,
                        email_key=row.email.lower(),
                        organisation_id=pk(org),
                        role=row.role,
                        language=row.language,
                    )
                )
                created += 1
            else:
                person.name, person.email = row.name, row.email
                person.organisation_id = org.id  # type: ignore[assignment]
                person.role, person.language = row.role, row.language
                person.updated_at = utcnow()
                session.add(person)
                updated += 1
        queries.audit(
            session,
            cycle_id=None,
            action="participants.import",
            detail=f"{path}: {created} new, {updated} updated",
        )
    return ImportResult(created=created, updated=updated)
