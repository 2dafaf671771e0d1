"""Launching a cycle: a template's stages put on the calendar for a network (no Prefect needed).

Each operation takes the engine and settings, does its work in one transaction, and raises a
SamverkanError with a one-line message when the input or the state does not fit.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from flows.cycles import plan
from flows.people.audience import parse_audience
from flows.settings import Settings
from flows.stages import KINDS, render_every_email
from flows.stages import signoff as signoff_texts
from flows.stages.base import StageRun
from flows.templates import ProcessTemplate, find_template, instruments, load_template
from messaging import i18n
from store import queries
from store.db import session_scope
from store.errors import InvalidInput, NotFound
from store.models import (
    Cycle,
    CycleMember,
    CycleStatus,
    Stage,
    pk,
)
from store.types import utcnow


def _one_line(text: str, what: str) -> str:
    value = text.strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if any(unicodedata.category(ch) in {"Cc", "Zl", "Zp"} for ch in value):
        raise InvalidInput(f"{what} must be one line of text")
    return value


def _email(value: str, what: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{what}: {value!r} is not an email address ({exc})") from None


def _variables(t: ProcessTemplate, given: Mapping[str, str], tz: Any) -> dict[str, str]:
    specs = t.spec.variables
    unknown = sorted(set(given) - set(specs))
    if unknown:
        known = ", ".join(specs) or "none"
        raise InvalidInput(f"template {t.name} has no variable {unknown[0]!r} (it takes: {known})")
    values: dict[str, str] = {}
    for name, spec in specs.items():
        raw = given.get(name, spec.default)
        if raw is None or not str(raw).strip():
            raise InvalidInput(
                f"missing variable {name}: add --var {name}=… ({spec.help or spec.type})"
            )
        if spec.type == "datetime":
            values[name] = plan.parse_when(str(raw), tz, what=f"--var {name}").isoformat()
        else:
            values[name] = _one_line(str(raw), f"--var {name}")
    return values


def _stage_rows(
    t: ProcessTemplate, start_at: datetime, values: Mapping[str, str], tz: Any, *, cycle_id: int
) -> list[Stage]:
    rows = []
    for position, spec in enumerate(t.spec.stages):
        at = None
        if spec.at == "start":
            at = start_at
        elif spec.at and spec.at in values:
            at = datetime.fromisoformat(values[spec.at])
        elif spec.at:
            at = plan.parse_when(spec.at, tz, what=f"time of stage {spec.key}")
        config: dict[str, Any] = {}
        if spec.meeting:
            starts = datetime.fromisoformat(values[spec.meeting.starts])
            config = {
                "starts_at": starts.isoformat(),
                "duration_minutes": int(
                    plan.parse_duration(spec.meeting.duration) / timedelta(minutes=1)
                ),
                "location": values.get(spec.meeting.location or "", ""),
            }
        if spec.questions:
            config["questions"] = list(spec.questions)
        rows.append(
            Stage(
                cycle_id=cycle_id,
                key=spec.key,
                kind=spec.kind,
                position=position * 10,
                at=at,
                anchor_key=spec.anchor,
                offset_seconds=int(spec.signed_offset.total_seconds()),
                template=spec.template,
                audience=spec.audience,
                unless=spec.unless,
                approval_required=spec.approval == "required",
                signoff=list(spec.signoff),
                config=config,
                due_at=start_at,  # replaced by recompute_due
            )
        )
    return rows


def _require_signoff(
    session: Session, stages: list[Stage], extra: Mapping[str, Sequence[str]]
) -> None:
    """Add the sign-off asked for at launch, and check every organisation named exists."""
    from flows.cycles.signoff import check_organisations

    by_key = {s.key: s for s in stages}
    for key, names in extra.items():
        if key not in by_key:
            raise NotFound(f"--signoff {key}=…: no stage {key!r} (stages: {', '.join(by_key)})")
        by_key[key].signoff = [*by_key[key].signoff, *names]
    for s in stages:
        if s.signoff:
            if s.kind == "reflection":
                raise InvalidInput(f"--signoff {s.key}: a reflection is not signed by the agencies")
            s.signoff = check_organisations(session, s.signoff)


def participant_emails(t: ProcessTemplate) -> list[str]:
    """The emails of a template that go to participants (a reflection goes to the
    coordinator), a meeting's update and cancellation included."""
    names: list[str] = []
    for s in t.spec.stages:
        if s.kind == "reflection" or not s.template:
            continue
        names.append(s.template)
        if s.kind == "meeting":
            names += [f"{s.template}-update", f"{s.template}-cancel"]
    return list(dict.fromkeys(names))


def complete_languages(t: ProcessTemplate) -> list[str]:
    """The languages every participant email of the template is written in: what a fallback
    can be."""
    emails = participant_emails(t)
    found = set.intersection(*(set(t.languages(n)) for n in emails)) if emails else set()
    return sorted(found)


def _fallback(t: ProcessTemplate, given: str | None) -> str | None:
    if not given:
        return None
    try:
        tag = i18n.normalise(given)
    except ValueError as exc:
        raise InvalidInput(f"--fallback-language: {exc}") from None
    lacking = [n for n in participant_emails(t) if i18n.best(tag, t.languages(n)) is None]
    if lacking:
        raise InvalidInput(
            f"--fallback-language {tag}: template {t.name} has no {lacking[0]} email in {tag}"
        )
    return tag


def language_notes(t: ProcessTemplate, languages: Sequence[str], fallback: str | None) -> list[str]:
    """One line per language of these participants that some email is not written in, naming
    what they get instead; InvalidInput when nothing serves them and no fallback was chosen."""
    counts = Counter(languages)
    emails = participant_emails(t)
    notes, unserved = [], []
    for lang in sorted(counts):
        reads = "participant reads" if counts[lang] == 1 else "participants read"
        people = f"{counts[lang]} {reads}"
        missing = [n for n in emails if i18n.best(lang, t.languages(n)) is None]
        parent = [n for n in emails if n not in missing and lang not in t.languages(n)]
        if missing:
            if fallback is None:
                unserved.append(f"{counts[lang]} read {lang}")
                continue
            what = "emails" if len(missing) == len(emails) else ", ".join(missing)
            notes.append(
                f"{people} {lang}: template {t.name} has no {lang} {what}; they get "
                f"{fallback} (--fallback-language)"
            )
        if parent:
            got = i18n.best(lang, t.languages(parent[0]))
            notes.append(
                f"{people} {lang}: {', '.join(parent)} not written in {lang}; they get {got}"
            )
    if unserved:
        have = complete_languages(t)
        raise InvalidInput(
            f"template {t.name} has no emails in the language of some participants "
            f"({'; '.join(unserved)}): choose what they get with --fallback-language "
            f"(it is written in {', '.join(have)})"
        )
    return notes


def launch_cycle(
    engine: Engine,
    settings: Settings,
    *,
    template: str,
    name: str,
    start: str,
    variables: Mapping[str, str] | None = None,
    timezone: str | None = None,
    audience: str | None = None,
    steering: Sequence[str] = (),
    rendered: set[tuple[str, str]] | None = None,
    signoff: Mapping[str, Sequence[str]] | None = None,
    fallback_language: str | None = None,
    notes: list[str] | None = None,
) -> int:
    """Create a running cycle from a template; validate every email for every recipient first.

    Nothing is written unless every template renders for every participant it will reach.
    ``rendered``, if given, receives the (template, language) of every email rendered.
    ``signoff``: organisations that must sign a stage, by stage key, besides the template's.
    ``fallback_language``: what participants get whose language the template has no emails
    in; ``notes`` receives one line per language that is served by another.
    """
    tz = plan.zone(timezone or settings.timezone)
    folder = find_template(settings.templates_dir, template)
    t = load_template(folder)
    # A bundled template is remembered by name; one elsewhere by its full path.
    bundled = folder.resolve() == (settings.templates_dir / t.name).resolve()
    template_ref = t.name if bundled else str(folder.resolve())
    name = _one_line(name, "--name")
    start_at = plan.parse_when(start, tz, what="--start")
    values = _variables(t, variables or {}, tz)
    chosen = parse_audience(audience)
    steering_group = [_email(e, "--steering") for e in steering]
    fallback = _fallback(t, fallback_language)
    # Everything below happens in one transaction: any error leaves nothing behind.
    with session_scope(engine) as session:
        people = [(p, o) for p, o in queries.list_participants(session) if not p.erased]
        people = chosen.select(people)
        if not people:
            raise InvalidInput(
                "no participants to invite"
                + (f" match the audience {chosen.text!r}" if audience else "")
                + ": import them first with: samverkan participants import FILE.csv"
            )
        told = language_notes(t, [str(p.language) for p, _ in people], fallback)
        if notes is not None:
            notes.extend(told)
        cycle = Cycle(
            name=name,
            template=template_ref,
            timezone=tz.key,
            start_at=start_at,
            variables=values,
            steering=steering_group,
            status=CycleStatus.running,
            fallback_language=fallback,
        )
        session.add(cycle)
        session.flush()
        session.add_all(CycleMember(cycle_id=pk(cycle), participant_id=pk(p)) for p, _ in people)
        stages = _stage_rows(t, start_at, values, tz, cycle_id=pk(cycle))
        for s in stages:
            if s.config.get("questions"):
                s.config["instruments"] = instruments.bind(
                    session, t.questions, s.config["questions"], cycle_id=pk(cycle)
                )
        plan.recompute_due(stages)
        for s in stages:
            if s.kind == "meeting":
                starts = datetime.fromisoformat(s.config["starts_at"])
                if starts < start_at:
                    raise InvalidInput(
                        f"the {s.key} starts {starts.astimezone(tz):%Y-%m-%d %H:%M}, "
                        f"before the cycle starts ({start_at:%Y-%m-%d %H:%M})"
                    )
        _require_signoff(session, stages, signoff or {})
        session.add_all(stages)
        session.flush()
        now = utcnow()
        for s in stages:  # render everything now, so that no error waits for send time
            done = render_every_email(StageRun(session, settings, cycle, s, t, now))
            if rendered is not None:
                rendered |= done
        for s in stages:  # ask the organisations that sign to read what they sign
            if s.signoff:
                signoff_texts.look(
                    StageRun(session, settings, cycle, s, t, now, validating=True), KINDS[s.kind]
                )
        queries.audit(
            session,
            cycle_id=cycle.id,
            action="cycle.launch",
            detail=f"template {t.name}, {len(people)} participants, "
            f"{len(stages)} stages, starts {start_at.isoformat()}"
            + "".join(f"; {line}" for line in told),
        )
        return pk(cycle)
