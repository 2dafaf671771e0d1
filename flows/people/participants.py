"""The network's participants: importing them from CSV (all rows or none), adding or
changing one person with the same checks as a row of the file, and listing them."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from sqlalchemy import Engine
from sqlmodel import Session

from messaging import i18n
from store import queries
from store.db import session_scope
from store.errors import ImportRejected, InvalidInput, NotFound, PersonRejected
from store.models import Organisation, Participant, Role, pk
from store.types import utcnow

COLUMNS = ("name", "email", "organisation", "role", "language")
# An optional column: the address a person had, for a row that gives them a new one. It moves
# the person (their cycles, answers and history) to the new address and clears a bounce.
PREVIOUS = "previous_email"
ROLES = ", ".join(r.value for r in Role)
LANGS = "a BCP 47 tag such as sv, en, fi, ar, or sv-x-easy for easy-to-read Swedish"


@dataclass(frozen=True)
class Row:
    line: int
    name: str
    email: str
    organisation: str
    role: Role
    language: str
    previous: str = ""  # the person's old address (the previous_email column), normalised


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


@lru_cache(maxsize=256)  # an import has a handful of distinct languages in many rows
def _language(given: str) -> str | None:
    try:
        return i18n.normalise(given)
    except ValueError:
        return None


def _check(
    given_name: str, given_email: str, given_organisation: str, given_role: str, given_language: str
) -> tuple[str, str, str, Role | None, str | None, dict[str, str]]:
    """One person's fields as stored (stripped, the email normalised), and what is wrong with
    them by field (name, organisation, email, role, language: the order they are told in)."""
    name = given_name.strip()
    given_email = given_email.strip()
    organisation = given_organisation.strip()
    given_role = given_role.strip()
    given_language = given_language.strip()
    reasons: dict[str, str] = {}
    if not name:
        reasons["name"] = "empty name"
    elif _has_control(name):
        reasons["name"] = "the name contains a line break or control character"
    if not organisation:
        reasons["organisation"] = "empty organisation"
    elif _has_control(organisation):
        reasons["organisation"] = "the organisation contains a line break or control character"
    email = given_email
    try:
        email = normalise_email(given_email)
    except EmailNotValidError as exc:
        reasons["email"] = f"bad email {given_email!r}: {exc}"
    role = _ROLES.get(given_role.lower())
    if role is None:
        reasons["role"] = f"unknown role {given_role!r} (use one of: {ROLES})"
    language = _language(given_language or "sv")
    if language is None:
        reasons["language"] = f"unknown language {given_language!r} (use {LANGS})"
    return name, email, organisation, role, language, reasons


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
    i_previous = names.index(PREVIOUS) if PREVIOUS in names else None
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
        name, email, organisation, role, language, reasons = _check(
            record[i_name], record[i_email], record[i_org], record[i_role], record[i_lang]
        )
        key = email.lower()
        if not reasons and key in seen:
            reasons["email"] = f"{email} is already on line {seen[key]}"
        previous = record[i_previous].strip() if i_previous is not None else ""
        if previous:
            try:
                previous = normalise_email(previous)
            except EmailNotValidError as exc:
                reasons["previous"] = f"bad previous_email {previous!r}: {exc}"
            else:
                if previous.lower() == key:
                    previous = ""  # the same address: nothing moves
                elif previous.lower() in seen:
                    reasons["previous"] = (
                        f"previous_email {previous} is on line {seen[previous.lower()]}"
                    )
        if reasons or role is None or language is None:
            problems.append(f"line {line}: " + "; ".join(reasons.values()))
            continue
        seen[key] = line
        if previous:
            seen[previous.lower()] = line
        rows.append(Row(line, name, email, organisation, role, language, previous))
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
    return import_csv(engine, data, source=str(path))


def import_csv(engine: Engine, data: bytes, *, source: str = "file") -> ImportResult:
    """Import or update every participant of a CSV file's ``data`` in one transaction, or
    none (ImportRejected); ``source`` names the file in messages and the audit log."""
    rows = parse_csv(data, source=source)
    # A few statements whatever the file's size: the organisations (looked up, the missing
    # ones added), the participants already known by email key, then one INSERT for the new
    # and one UPDATE for the known ones. Row by row through the ORM, with a look-up of both
    # for each row, 50,000 new participants took 87 s on SQLite and 168 s on PostgreSQL
    # (python -m benchmarks import).
    with session_scope(engine) as session:
        orgs = queries.create_organisations(session, names=(r.organisation for r in rows))
        known = queries.participant_ids(session, email_keys=(r.email.lower() for r in rows))
        moved = _move_addresses(session, [r for r in rows if r.previous], known, source)
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for row in rows:
            values = {
                "name": row.name,
                "email": row.email,
                "organisation_id": orgs[row.organisation],
                "role": row.role.value,
                "language": row.language,
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
            detail=f"{source}: {created} new, {updated} updated"
            + (f", {moved} given a new address" if moved else ""),
        )
    return ImportResult(created=created, updated=updated)


def _move_addresses(session: Session, rows: list[Row], known: dict[str, int], source: str) -> int:
    """Give the people of ``rows`` their new address (found by their previous one), clearing
    a bounce: the new address has not failed. Adds each to ``known`` under the new address,
    so the row then updates them. Refused, with every problem, before anything is written:
    a previous address that is not in the network, a new one that already is."""
    if not rows:
        return 0
    before = queries.participant_ids(session, email_keys=(r.previous.lower() for r in rows))
    problems = []
    for r in rows:
        if r.previous.lower() not in before:
            problems.append(f"line {r.line}: previous_email {r.previous} is not in the network")
        elif r.email.lower() in known:
            problems.append(
                f"line {r.line}: {r.email} is already in the network (as another participant)"
            )
    if problems:
        raise ImportRejected(problems)
    for r in rows:
        pid = before[r.previous.lower()]
        person = session.get(Participant, pid)
        if person is None:  # pragma: no cover - found by the query above
            continue
        if person.bounced_at is not None:
            queries.audit(
                session,
                cycle_id=None,
                action="participant.unbounced",
                detail=f"participant {pid}: a new address from {source}; the bounce is cleared",
            )
        person.email, person.email_key = r.email, r.email.lower()
        person.bounced_at, person.bounce_reason, person.soft_bounces = None, None, 0
        person.updated_at = utcnow()
        session.add(person)
        known[r.email.lower()] = pid
    session.flush()
    return len(rows)


def csv_records(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV file's header, and its records after it, each with the line it starts on as
    parse_csv numbers them (blank ones left out), up to the first one that cannot be read:
    to show a rejected file beside its problems. Call it on data parse_csv could decode."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header: list[str] = []
    records: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, [])
        while True:
            line = reader.line_num + 1
            record = next(reader, None)
            if record is None:
                break
            if "".join(record).strip():
                records.append((line, record))
    except csv.Error:
        pass
    return header, records


@dataclass(frozen=True)
class Listed:
    """A participant as the list shows them (``participants list``, the Network page)."""

    id: int
    name: str
    email: str
    organisation: str
    role: str
    language: str
    erased: bool
    unsubscribed: bool
    # Why mail to their address came back (a delivery report), or None while it arrives.
    bounced: str | None = None

    @property
    def mail(self) -> str:
        """Whether they still get mail: yes, unsubscribed, bounced or erased."""
        if self.erased:
            return "erased"
        return "unsubscribed" if self.unsubscribed else "bounced" if self.bounced else "yes"


def _listed(p: Participant, o: Organisation) -> Listed:
    return Listed(
        id=pk(p),
        name=p.name,
        email=p.email,
        organisation=o.name,
        role=str(p.role),
        language=str(p.language),
        erased=p.erased,
        unsubscribed=not p.consent and not p.erased,
        bounced=(p.bounce_reason or "address bounced") if p.bounced_at and not p.erased else None,
    )


def list_network(engine: Engine) -> list[Listed]:
    """Every participant, erased ones too (their name is [erased]), by organisation and name."""
    with session_scope(engine) as session:
        return [_listed(p, o) for p, o in queries.list_participants(session)]


def get_participant(engine: Engine, participant_id: int) -> Listed:
    """One participant by id; NotFound if there is none or they were erased."""
    with session_scope(engine) as session:
        p = session.get(Participant, participant_id)
        if p is None or p.erased:
            raise NotFound(f"no participant with id {participant_id}")
        o = session.get(Organisation, p.organisation_id)
        assert o is not None
        return _listed(p, o)


def _checked(
    session: Session,
    *,
    name: str,
    email: str,
    organisation: str,
    role: str,
    language: str,
    participant_id: int | None,
) -> Row:
    """One person's fields checked as a row of a file is, and their address not another
    participant's; raises PersonRejected with a reason per field."""
    name, email, organisation, checked_role, checked_language, reasons = _check(
        name, email, organisation, role, language
    )
    if "email" not in reasons:
        other = queries.find_participant(session, email=email)
        if other is not None and pk(other) != participant_id:
            reasons["email"] = f"another participant ({other.name}) has the address {other.email}"
    if reasons or checked_role is None or checked_language is None:
        raise PersonRejected(reasons)
    return Row(0, name, email, organisation, checked_role, checked_language)


def add_participant(
    engine: Engine, *, name: str, email: str, organisation: str, role: str, language: str = "sv"
) -> int:
    """Add one person (checked as a row of a file is); their id. An address already in the
    network is refused here (the import would update that person instead)."""
    with session_scope(engine) as session:
        row = _checked(
            session,
            name=name,
            email=email,
            organisation=organisation,
            role=role,
            language=language,
            participant_id=None,
        )
        orgs = queries.create_organisations(session, names=[row.organisation])
        person = Participant(
            name=row.name,
            email=row.email,
            email_key=row.email.lower(),
            organisation_id=orgs[row.organisation],
            role=row.role,
            language=row.language,
        )
        session.add(person)
        session.flush()
        pid = pk(person)
        queries.audit(
            session, cycle_id=None, action="participant.add", detail=f"participant {pid} added"
        )
    return pid


def edit_participant(
    engine: Engine,
    participant_id: int,
    *,
    name: str,
    email: str,
    organisation: str,
    role: str,
    language: str,
) -> list[str]:
    """Change one person (checked as a row of a file is); the fields that changed. Their
    consent stays as it is."""
    with session_scope(engine) as session:
        person = session.get(Participant, participant_id)
        if person is None or person.erased:
            raise NotFound(f"no participant with id {participant_id}")
        row = _checked(
            session,
            name=name,
            email=email,
            organisation=organisation,
            role=role,
            language=language,
            participant_id=participant_id,
        )
        orgs = queries.create_organisations(session, names=[row.organisation])
        new = {
            "name": row.name,
            "email": row.email,
            "organisation_id": orgs[row.organisation],
            "role": row.role,
            "language": row.language,
        }
        changed = [k for k, v in new.items() if getattr(person, k) != v]
        if not changed:
            return []
        for key, value in new.items():
            setattr(person, key, value)
        if "email" in changed:  # the new address has not bounced
            person.bounced_at, person.bounce_reason, person.soft_bounces = None, None, 0
        person.email_key = row.email.lower()
        person.updated_at = utcnow()
        session.add(person)
        told = [k.removesuffix("_id") for k in changed]
        queries.audit(
            session,
            cycle_id=None,
            action="participant.edit",
            detail=f"participant {participant_id}: {', '.join(told)} changed",
        )
    return told
