"""Sign-off across agencies, as the coordinator and the signers meet it.

What the participants receive is checked against what the organisations signed: every
message that arrives at a real SMTP server is read back, each person's own values are put
back as markers, and the hash must be the one signed for their language.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from markdown_it.common.utils import escapeHtml
from sqlmodel import Session, func, select

from flows.cycles.approve import approve_stage
from flows.cycles.launch import launch_cycle
from flows.cycles.resequence import add_participants, edit_stage, set_cycle_status
from flows.cycles.signoff import sign, signoff_status
from flows.people.accounts import add_account
from flows.settings import REPO_TEMPLATES, Settings
from flows.stages.signoff import MARKS, Text, content_hash
from messaging import links
from store import queries
from store.errors import InvalidInput, NotFound, PermissionDenied, TemplateError
from store.models import CycleStatus, Message, Participant, Stage, pk
from store.types import utcnow
from tests.conftest import launch_learning_cycle, tick
from tests.smtpd import RecordingSMTP
from tests.workspace import COORDINATOR, SIGNER, VIEWER

FK, AF, RVG = "Försäkringskassan", "Arbetsförmedlingen", "Region Västra Götaland"
AF_SIGNER = "signer@af.example"
RVG_SIGNER = "signer@vgregion.example"
BOTH = {"invitation": [FK, AF]}


def start_soon() -> datetime:
    """An hour from now, on the minute: the tick at the due time is not yet due a reminder
    (asking happens at launch, in real time)."""
    return (utcnow() + timedelta(hours=1)).replace(second=0, microsecond=0)


@pytest.fixture
def signers(network, accounts):  # type: ignore[no-untyped-def]
    """Signer accounts for Försäkringskassan (the ``accounts`` one), Arbetsförmedlingen and
    Region Västra Götaland."""
    add_account(network, email=AF_SIGNER, role="signer", organisation=AF)
    add_account(network, email=RVG_SIGNER, role="signer", organisation=RVG)
    return network


@pytest.fixture
def smtp(settings, monkeypatch):  # type: ignore[no-untyped-def]
    with RecordingSMTP() as server:
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        yield server


def live(**extra: str) -> Settings:
    return Settings(**extra)  # type: ignore[arg-type]


def arrived(server: RecordingSMTP) -> list[tuple[str, EmailMessage]]:
    return [
        (to[0].lower(), cast(EmailMessage, message_from_bytes(data, policy=policy.default)))
        for _, to, data in server.recorder.messages
    ]


def body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    # SMTP carries lines ending in CRLF; the text as written has LF.
    return str(part.get_content()).replace("\r\n", "\n")


def stage_row(engine, cycle_id: int, key: str) -> Stage:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return s.exec(select(Stage).where(Stage.cycle_id == cycle_id, Stage.key == key)).one()


def messages_of(engine, stage_id: int) -> list[Message]:  # type: ignore[no-untyped-def]
    """The stage's messages to participants (not the sign-off emails to signers)."""
    with Session(engine) as s:
        return list(
            s.exec(
                select(Message)
                .where(
                    Message.stage_id == stage_id,
                    Message.participant_id.is_not(None),  # type: ignore[union-attr]
                )
                # In the order they were written: callers slice off the ones added later (a
                # query without an order may return them in any order on PostgreSQL).
                .order_by(Message.id)  # type: ignore[arg-type]
            )
        )


def valid_signatures(engine, settings, cycle_id: int, key: str = "invitation") -> set[tuple]:  # type: ignore[no-untyped-def]
    status = signoff_status(engine, settings, cycle_id=cycle_id, key=key)
    return {(s.organisation, s.content_hash) for s in status.signatures if s.void_at is None}


def to_signers(got: list[tuple[str, EmailMessage]], address: str) -> list[EmailMessage]:
    return [m for to, m in got if to == address]


# -- 1. end to end through a real SMTP server --------------------------------------------------


def unfill(part: str, values: dict[str, str], *, html: bool = False) -> str:
    """``part`` with this person's values put back as markers (longest first: the name
    holds the first name)."""
    for field in sorted(values, key=lambda f: -len(values[f])):
        value = values[field]
        if html:
            value = escapeHtml(" ".join(value.split()))
        part = part.replace(value, MARKS[field])
    return part


def test_signed_text_is_what_every_participant_receives(signers, settings, smtp) -> None:
    start = start_soon()
    cycle_id = launch_learning_cycle(
        signers, live(), start, start + timedelta(days=14), approve=False, signoff=BOTH
    )
    report = tick(start)
    outcomes = {o.key: o for _, o in report.stages}
    assert outcomes["invitation"].status == "waiting", report.lines()
    assert list(outcomes) == ["invitation"]  # the stages behind it wait too
    assert stage_row(signers, cycle_id, "workshop").status == "pending"
    assert not messages_of(signers, pk(stage_row(signers, cycle_id, "invitation")))
    got = arrived(smtp)
    to_coordinator = to_signers(got, settings.reflection_to)
    assert len(to_coordinator) == 1
    assert "waiting for sign-off" in str(to_coordinator[0]["subject"]).lower() or (
        "väntar på underskrift" in str(to_coordinator[0]["subject"]).lower()
    )
    assert FK in body(to_coordinator[0], "plain") and AF in body(to_coordinator[0], "plain")
    # Both organisations' signers were asked (at launch, delivered by this tick).
    assert len(to_signers(got, SIGNER)) == 1 and len(to_signers(got, AF_SIGNER)) == 1
    assert not to_signers(got, RVG_SIGNER)

    assert "still waiting for Arbetsförmedlingen" in sign(
        signers, live(), cycle_id=cycle_id, key="invitation", email=SIGNER
    )
    first = valid_signatures(signers, settings, cycle_id)
    assert {org for org, _ in first} == {FK}

    preview = edit_stage(
        signers,
        live(),
        cycle_id=cycle_id,
        key="invitation",
        template="progress-note",
        dry_run=True,
    )
    said = "\n".join(preview.lines())
    assert f"{FK}'s signature ({SIGNER})" in said and "is void" in said, said
    assert valid_signatures(signers, settings, cycle_id) == first  # a dry run keeps it
    done = edit_stage(
        signers, live(), cycle_id=cycle_id, key="invitation", template="progress-note"
    )
    assert "is void" in "\n".join(done.lines())
    assert valid_signatures(signers, settings, cycle_id) == set()

    before = len(smtp.recorder.messages)
    tick(start + timedelta(minutes=5))
    news = arrived(smtp)[before:]
    void = to_signers(news, SIGNER)
    assert len(void) == 1, [m["subject"] for _, m in news]
    assert "void" in body(void[0], "plain") or "gäller inte längre" in body(void[0], "plain")
    assert not messages_of(signers, pk(stage_row(signers, cycle_id, "invitation")))

    for who in (SIGNER, AF_SIGNER):
        sign(signers, live(), cycle_id=cycle_id, key="invitation", email=who)
    approve_stage(signers, cycle_id=cycle_id, key="invitation", settings=live())
    before = len(smtp.recorder.messages)
    report = tick(start + timedelta(minutes=10))
    outcomes = {o.key: o for _, o in report.stages}
    assert outcomes["invitation"].status == "done", report.lines()

    status = signoff_status(signers, settings, cycle_id=cycle_id, key="invitation")
    valid = valid_signatures(signers, settings, cycle_id)
    signed_by_language: dict[str, Text] = {}
    for t in status.texts:
        assert {(FK, t.content_hash), (AF, t.content_hash)} <= valid
        signed_by_language[t.language] = t

    invitation = stage_row(signers, cycle_id, "invitation")
    ours = {
        m.message_id: m
        for m in messages_of(signers, pk(invitation))
        if m.participant_id is not None
    }
    with Session(signers) as s:
        people = {pk(p): (p, o.name) for p, o in queries.list_participants(s)}
    key = live().link_key()
    has_links = any(links.MARK in t.text + t.html for t in status.texts)
    received: Counter[str] = Counter()
    checked = 0
    for to, msg in arrived(smtp)[before:]:
        m = ours.get(str(msg["Message-ID"]).strip())
        if m is None:
            continue
        person, organisation = people[m.participant_id]
        assert to == person.email.lower()
        received[to] += 1
        values = {
            "name": person.name,
            "first_name": person.name.split()[0],
            "email": person.email,
            "organisation": organisation,
        }
        parts = [
            unfill(str(msg["subject"]), values),
            unfill(body(msg, "plain"), values),
            unfill(body(msg, "html"), values, html=True),
            "",
        ]
        tokens = {
            links.token_for(key, purpose, pk(invitation), pk(person)): links.placeholder(
                purpose, pk(invitation)
            )
            for purpose in ("answers", "rsvp")
        }
        if has_links:
            for token, mark in tokens.items():
                parts = [p.replace(token, mark) for p in parts]
        text = signed_by_language[str(person.language)]
        assert (text.subject, text.text, text.html, text.calendar) == tuple(parts), to
        assert content_hash(*parts) == text.content_hash
        checked += 1
    with Session(signers) as s:
        members = s.exec(select(func.count()).select_from(Participant)).one()
    assert checked == members == len(received) == 13
    assert set(received.values()) == {1}  # every participant got exactly one invitation


def test_a_signed_calendar_invite_with_personal_links_arrives_as_signed(
    signers, settings, smtp
) -> None:  # type: ignore[no-untyped-def]
    """The workshop: an email with each person's RSVP link, and a calendar invite. What
    arrives, with the person's values and link put back as markers and placeholders, and the
    calendar part read back, is the signed text of their language."""
    from messaging.calendar import summary

    start = start_soon()
    cycle_id = launch_learning_cycle(
        signers, live(), start, start + timedelta(days=14), signoff={"workshop": [FK, AF]}
    )
    for who in (SIGNER, AF_SIGNER):
        sign(signers, live(), cycle_id=cycle_id, key="workshop", email=who)
    before = len(smtp.recorder.messages)
    report = tick(start)
    assert {o.key: o.status for _, o in report.stages}["workshop"] == "done", report.lines()
    status = signoff_status(signers, settings, cycle_id=cycle_id, key="workshop")
    by_language = {t.language: t for t in status.texts}
    assert all(links.MARK in t.text and t.calendar for t in status.texts)  # links and invite
    workshop = stage_row(signers, cycle_id, "workshop")
    ours = {m.message_id: m for m in messages_of(signers, pk(workshop))}
    with Session(signers) as s:
        people = {pk(p): (p, o.name) for p, o in queries.list_participants(s)}
    key = live().link_key()
    checked = 0
    for to, msg in arrived(smtp)[before:]:
        m = ours.get(str(msg["Message-ID"]).strip())
        if m is None:
            continue
        person, organisation = people[m.participant_id]
        values = {
            "name": person.name,
            "first_name": person.name.split()[0],
            "email": person.email,
            "organisation": organisation,
        }
        token = links.token_for(key, "rsvp", pk(workshop), pk(person))
        assert token in body(msg, "plain")  # a personal link arrived, not the placeholder
        invite = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        parts = [
            unfill(str(msg["subject"]), values),
            unfill(body(msg, "plain"), values),
            unfill(body(msg, "html"), values, html=True),
            unfill(summary(str(invite.get_content())), values),
        ]
        parts = [p.replace(token, links.placeholder("rsvp", pk(workshop))) for p in parts]
        text = by_language[str(person.language)]
        assert content_hash(*parts) == text.content_hash, to
        checked += 1
    assert checked == 13


# -- 2. who may sign ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "says"),
    [
        (RVG_SIGNER, "not asked to sign"),
        (VIEWER, "a viewer reads, and cannot sign"),
        (COORDINATOR, "coordinators approve, signers sign"),
        ("nobody@unknown.example", "has no active workspace account"),
    ],
)
def test_only_a_signer_of_an_asked_organisation_can_sign(signers, settings, who, says) -> None:
    start = start_soon()
    cycle_id = launch_learning_cycle(
        signers, settings, start, start + timedelta(days=14), approve=False, signoff=BOTH
    )
    with pytest.raises(PermissionDenied, match=says):
        sign(signers, settings, cycle_id=cycle_id, key="invitation", email=who)
    status = signoff_status(signers, settings, cycle_id=cycle_id, key="invitation")
    assert status.signatures == []
    assert {o.organisation: bool(o.missing) for o in status.organisations} == {FK: True, AF: True}


# -- 3. a template file changed on disk --------------------------------------------------------


def copy_template(tmp_path: Path) -> Path:
    folder = tmp_path / "templates" / "our-cycle"
    shutil.copytree(REPO_TEMPLATES / "learning-cycle", folder)
    return folder


def launch_from(engine, settings, folder: Path, start: datetime, **extra: Any) -> int:  # type: ignore[no-untyped-def]
    return launch_cycle(
        engine,
        settings,
        template=str(folder),
        name="Vår 2027",
        start=start.isoformat(),
        variables={"workshop_at": (start + timedelta(days=14)).isoformat(), "location": "Här"},
        **extra,
    )


def test_a_changed_template_file_voids_the_signatures_and_holds_the_stage(
    signers, settings, tmp_path
) -> None:
    folder = copy_template(tmp_path)
    start = start_soon()
    cycle_id = launch_from(signers, settings, folder, start, signoff=BOTH)
    for who in (SIGNER, AF_SIGNER):
        sign(signers, settings, cycle_id=cycle_id, key="invitation", email=who)
    approve_stage(signers, cycle_id=cycle_id, key="invitation", settings=settings)
    signed = valid_signatures(signers, settings, cycle_id)
    status = signoff_status(signers, settings, cycle_id=cycle_id, key="invitation")
    sv = {t.content_hash for t in status.texts if t.language == "sv"}
    assert status.complete and sv and {h for _, h in signed} > sv

    email = folder / "emails" / "invitation.sv.md.j2"
    email.write_text(
        email.read_text(encoding="utf-8").replace("Varma hälsningar", "Vänliga hälsningar"),
        encoding="utf-8",
    )
    report = tick(start)
    assert any("void" in line for line in report.signoff), report.lines()
    outcomes = {o.key: o for _, o in report.stages}
    assert outcomes["invitation"].status == "waiting", report.lines()
    invitation = stage_row(signers, cycle_id, "invitation")
    assert invitation.approved_at is None  # the approval rested on the void signatures
    assert not messages_of(signers, pk(invitation))
    # The Swedish text's signatures are void; the English one is unchanged and still signed.
    assert valid_signatures(signers, settings, cycle_id) == {
        (org, h) for org, h in signed if h not in sv
    }
    with Session(signers) as s:
        told = s.exec(
            select(Message.to_key).where(
                Message.stage_id == pk(invitation),
                Message.category == "signoff",
                Message.subject.startswith("Skriv under igen"),  # type: ignore[attr-defined]
            )
        ).all()
    assert sorted(told) == sorted([SIGNER, AF_SIGNER])


def test_a_signed_stage_whose_template_breaks_fails_with_its_reason_and_the_tick_ends(
    signers, settings, tmp_path
) -> None:
    """The texts to sign are rendered before the stage is claimed: a template that no longer
    renders there fails the stage with its reason, as it would without sign-off (and the tick
    does not try it again and again)."""
    folder = copy_template(tmp_path)
    start = start_soon()
    cycle_id = launch_from(signers, settings, folder, start, signoff=BOTH)
    for who in (SIGNER, AF_SIGNER):
        sign(signers, settings, cycle_id=cycle_id, key="invitation", email=who)
    approve_stage(signers, cycle_id=cycle_id, key="invitation", settings=settings)
    email = folder / "emails" / "invitation.sv.md.j2"
    email.write_text(email.read_text(encoding="utf-8") + "\n{{ 1 / 0 }}\n", encoding="utf-8")
    report = tick(start)
    outcomes = {o.key: o for _, o in report.stages}
    assert outcomes["invitation"].status == "failed", report.lines()
    assert "division by zero" in outcomes["invitation"].note
    assert stage_row(signers, cycle_id, "invitation").status == "failed"
    assert not messages_of(signers, pk(stage_row(signers, cycle_id, "invitation")))


# -- 4. a personal value used in a way the marker cannot show -----------------------------------


def test_a_personal_value_the_signed_text_cannot_show_is_not_sent(
    signers, settings, tmp_path
) -> None:
    folder = copy_template(tmp_path)
    for language in ("sv", "en"):
        email = folder / "emails" / f"invitation.{language}.md.j2"
        text = email.read_text(encoding="utf-8")
        email.write_text(
            text.replace("{{ participant.first_name }}", "{{ participant.name|upper }}"),
            encoding="utf-8",
        )
    start = start_soon()
    cycle_id = launch_from(signers, settings, folder, start, signoff=BOTH)
    for who in (SIGNER, AF_SIGNER):
        sign(signers, settings, cycle_id=cycle_id, key="invitation", email=who)
    approve_stage(signers, cycle_id=cycle_id, key="invitation", settings=settings)

    report = tick(start)
    outcomes = {o.key: o for _, o in report.stages}
    assert outcomes["invitation"].status == "waiting", report.lines()
    invitation = stage_row(signers, cycle_id, "invitation")
    assert invitation.status == "approved" and invitation.ran_at is None
    assert invitation.note and "not the signed text" in invitation.note
    assert "personal value" in invitation.note
    assert not messages_of(signers, pk(invitation))
    assert stage_row(signers, cycle_id, "workshop").status == "pending"


# -- 5. sign-off named in process.yaml, and at launch -------------------------------------------


def test_signoff_in_process_yaml_is_taken_at_launch(signers, settings, tmp_path) -> None:
    folder = copy_template(tmp_path)
    spec = folder / "process.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            "    approval: required\n", "    approval: required\n    signoff: [Försäkringskassan]\n"
        ),
        encoding="utf-8",
    )
    cycle_id = launch_from(signers, settings, folder, start_soon())
    assert stage_row(signers, cycle_id, "invitation").signoff == [FK]
    assert stage_row(signers, cycle_id, "workshop").signoff == []
    status = signoff_status(signers, settings, cycle_id=cycle_id, key="invitation")
    assert [o.organisation for o in status.organisations] == [FK]
    assert status.texts and not status.complete


def stages_stored(engine) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Stage)).one()


def test_an_unknown_organisation_at_launch_names_the_known_ones(signers, settings) -> None:
    start = start_soon()
    with pytest.raises(NotFound) as caught:
        launch_learning_cycle(
            signers,
            settings,
            start,
            start + timedelta(days=14),
            approve=False,
            signoff={"invitation": ["Kronofogden"]},
        )
    said = str(caught.value)
    assert "\n" not in said and "'Kronofogden'" in said
    for org in (FK, AF, RVG, "Göteborgs Stad"):
        assert org in said
    assert stages_stored(signers) == 0


def test_a_reflection_is_not_signed(signers, settings, tmp_path) -> None:
    start = start_soon()
    with pytest.raises(InvalidInput, match="reflection"):
        launch_learning_cycle(
            signers,
            settings,
            start,
            start + timedelta(days=14),
            approve=False,
            signoff={"reflection": [FK]},
        )
    assert stages_stored(signers) == 0
    folder = copy_template(tmp_path)
    spec = folder / "process.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            "    kind: reflection\n", "    kind: reflection\n    signoff: [Försäkringskassan]\n"
        ),
        encoding="utf-8",
    )
    with pytest.raises(TemplateError, match="reflection goes to the coordinator"):
        launch_from(signers, settings, folder, start)
    assert stages_stored(signers) == 0
    cycle_id = launch_learning_cycle(signers, settings, start, start + timedelta(days=14))
    with pytest.raises(InvalidInput, match="reflection"):
        edit_stage(signers, settings, cycle_id=cycle_id, key="reflection", signoff=[FK])
    assert stage_row(signers, cycle_id, "reflection").signoff == []


# -- 6. a reminder, once ------------------------------------------------------------------------


def reminders(engine, stage_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return sorted(
            s.exec(
                select(Message.to_key).where(
                    Message.stage_id == stage_id,
                    Message.category == "signoff",
                    Message.subject.startswith("Påminnelse"),  # type: ignore[attr-defined]
                )
            ).all()
        )


@pytest.mark.parametrize(
    ("hours", "later"), [(None, timedelta(hours=49)), ("0.5", timedelta(hours=1))]
)
def test_the_organisation_that_has_not_signed_is_reminded_once(
    signers, settings, monkeypatch, hours, later
) -> None:
    if hours:
        monkeypatch.setenv("SAMVERKAN_SIGNOFF_REMIND_AFTER_HOURS", hours)
    asked = utcnow()
    start = start_soon()
    cycle_id = launch_learning_cycle(
        signers, live(), start, start + timedelta(days=14), approve=False, signoff=BOTH
    )
    sign(signers, live(), cycle_id=cycle_id, key="invitation", email=SIGNER)
    invitation = pk(stage_row(signers, cycle_id, "invitation"))
    tick(asked + timedelta(minutes=10))
    assert reminders(signers, invitation) == []  # not yet
    report = tick(asked + later)
    assert reminders(signers, invitation) == [AF_SIGNER], report.lines()
    tick(asked + later + timedelta(days=5))
    assert reminders(signers, invitation) == [AF_SIGNER]  # once


# -- what the review of the first version found -------------------------------------------------


def test_a_newcomer_gets_a_catch_up_only_of_a_text_that_was_signed(signers, settings, smtp) -> None:
    """The cycle writes in Swedish only; its invitation is signed and sent. A Swedish-speaking
    newcomer gets the signed invitation as catch-up; an English-speaking one does not (nobody
    signed an English text), and the preview says so."""
    start = start_soon()
    cycle_id = launch_cycle(
        signers,
        live(),
        template="learning-cycle",
        name="Vår 2027",
        start=start.isoformat(),
        variables={"workshop_at": (start + timedelta(days=14)).isoformat(), "location": "Här"},
        audience="language=sv org=Försäkringskassan",
        signoff={"invitation": [FK]},
    )
    sign(signers, live(), cycle_id=cycle_id, key="invitation", email=SIGNER)
    approve_stage(signers, cycle_id=cycle_id, key="invitation", settings=live())
    tick(start)
    invitation = stage_row(signers, cycle_id, "invitation")
    assert invitation.status == "done"
    before = len(messages_of(signers, pk(invitation)))

    swedish, english = (
        "maria.sandberg@arbetsformedlingen.example",
        "ali.hassan@arbetsformedlingen.example",
    )
    effects = add_participants(signers, live(), cycle_id=cycle_id, emails=[swedish, english])
    said = "\n".join(effects.lines())
    assert "no catch-up of invitation to 1 newcomer: nobody signed a text for en/manager" in said
    caught_up = {m.to_key for m in messages_of(signers, pk(invitation))[before:]}
    assert caught_up == {swedish}


def test_an_approval_in_advance_does_not_cover_a_text_added_after_it(signers, settings) -> None:
    """Approved in advance on the Swedish text; an English-speaking participant joins, so the
    stage would send an English text too. Once it is signed, the stage does not go out on the
    old approval: its drafts wait for the coordinator."""
    start = start_soon()
    cycle_id = launch_cycle(
        signers,
        live(),
        template="learning-cycle",
        name="Vår 2027",
        start=start.isoformat(),
        variables={"workshop_at": (start + timedelta(days=14)).isoformat(), "location": "Här"},
        audience="language=sv",
        signoff={"invitation": [FK]},
    )
    sign(signers, live(), cycle_id=cycle_id, key="invitation", email=SIGNER)
    assert "in advance" in approve_stage(
        signers, cycle_id=cycle_id, key="invitation", settings=live()
    )
    add_participants(
        signers, live(), cycle_id=cycle_id, emails=["ali.hassan@arbetsformedlingen.example"]
    )
    status = signoff_status(signers, settings, cycle_id=cycle_id, key="invitation")
    assert not status.complete and not status.approved  # a new text: withdrawn
    sign(signers, live(), cycle_id=cycle_id, key="invitation", email=SIGNER)
    report = tick(start)
    assert {o.key: o.status for _, o in report.stages}["invitation"] == "awaiting_approval"


def test_a_signer_told_by_the_tick_after_a_page_read_voided_their_signature_is_asked_again(
    signers, settings, tmp_path, smtp
) -> None:
    """Reading the status after the template file changed voids the signature (and emails
    nobody); the tick then emails the signer to sign again, not a plain 'waiting'."""
    folder = copy_template(tmp_path)
    start = start_soon()
    cycle_id = launch_from(signers, live(), folder, start, signoff={"invitation": [FK]})
    sign(signers, live(), cycle_id=cycle_id, key="invitation", email=SIGNER)
    tick(utcnow())  # delivers the launch's "waiting for your signature"
    email = folder / "emails" / "invitation.sv.md.j2"
    email.write_text(email.read_text(encoding="utf-8") + "\nP.S.\n", encoding="utf-8")
    read = signoff_status(signers, settings, cycle_id=cycle_id, key="invitation")
    assert any(s.void_at is not None for s in read.signatures)
    before = len(smtp.recorder.messages)
    tick(start - timedelta(minutes=30))  # before it is due: only sign-off's look
    to_fk = to_signers(arrived(smtp)[before:], SIGNER)
    assert len(to_fk) == 1
    assert "Skriv under igen" in str(to_fk[0]["subject"]) or "again" in str(to_fk[0]["subject"])


def test_a_broken_signed_stage_does_not_stop_other_changes_and_its_page_says_why(
    signers, settings, tmp_path, web
) -> None:
    folder = copy_template(tmp_path)
    start = start_soon()
    cycle_id = launch_from(signers, live(), folder, start, signoff={"invitation": [FK]})
    email = folder / "emails" / "invitation.sv.md.j2"
    email.write_text(email.read_text(encoding="utf-8") + "\n{{ 1 / 0 }}\n", encoding="utf-8")
    effects = set_cycle_status(signers, live(), cycle_id=cycle_id, to=CycleStatus.paused)
    assert "invitation: its texts to sign do not render" in "\n".join(effects.lines())
    page = web(SIGNER).get(f"/workspace/cycles/{cycle_id}/stages/invitation/signoff")
    assert page.status_code == 422
    assert "nvitation cannot be shown" in page.text and "division by zero" in page.text
