"""The workspace's cycle pages: the plan as a timeline, changing it through a preview and a
confirmation, a stage's drafts and their approval, the outbox, and the audit log.

Each test goes through the pages as a browser would (tests/workspace.py) and checks what the
coordinator reads there and what really happened: the plan in the store, the audit log, and
the participants' Maildirs after a tick.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from sqlmodel import Session

from flows.cycles.approve import approve_stage
from flows.cycles.overview import cycle_overview
from flows.cycles.resequence import reschedule_stage, skip_stage
from store import queries
from store.models import MessageStatus
from tests.conftest import launch_learning_cycle, read_maildir, tick
from tests.workspace import COORDINATOR, SIGNER, SIGNER_ORG, VIEWER, csrf_of

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
EVERYONE = 13
STAGES = ["invitation", "workshop", "workshop-reminder", "followup", "followup-reminder"]


@pytest.fixture
def cycle(network, settings) -> int:  # type: ignore[no-untyped-def]
    """A launched learning cycle whose invitation waits for the coordinator's approval."""
    return launch_learning_cycle(network, settings, START, WORKSHOP, approve=False)


@pytest.fixture
def announced(network, settings, cycle) -> int:  # type: ignore[no-untyped-def]
    """The cycle after its invitation and workshop invite went to everyone."""
    approve_stage(network, cycle_id=cycle, key="invitation")
    assert tick(START).delivery.sent == 2 * EVERYONE
    return cycle


def plan_view(engine: Any, cycle_id: int) -> dict[str, tuple[str, str, str]]:
    return {
        s["key"]: (s["due"], s["timing"], s["status"])
        for s in cycle_overview(engine, cycle_id=cycle_id)["stages"]
    }


def starts(engine: Any, cycle_id: int) -> str:
    [workshop] = [
        s for s in cycle_overview(engine, cycle_id=cycle_id)["stages"] if s["key"] == "workshop"
    ]
    return str(workshop["starts"])


def version(engine: Any, cycle_id: int) -> int:
    return int(cycle_overview(engine, cycle_id=cycle_id)["plan_version"])


def form_values(page: str, action: str) -> dict[str, str]:
    """The inputs (with their values) of the page's form that posts to ``action``."""
    found = re.search(rf'<form method="post" action="{re.escape(action)}">(.*?)</form>', page, re.S)
    assert found, f"no form posting to {action}"
    return {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', found[1])
    }


def field_error(page: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="error-{name}" role="alert">(.*?)</p>', page)
    assert found, f"no error beside the field {name}"
    return html.unescape(found[1])


def new_mail(settings: Any, before: dict[str, int]) -> dict[str, list[Any]]:
    return {
        box: msgs[before.get(box, 0) :]
        for box, msgs in read_maildir(Path(settings.mail_dir)).items()
        if len(msgs) > before.get(box, 0)
    }


def mail_counts(settings: Any) -> dict[str, int]:
    return {box: len(m) for box, m in read_maildir(Path(settings.mail_dir)).items()}


# -- the timeline ---------------------------------------------------------------------------


def test_the_cycle_page_shows_the_plan_as_a_timeline(web, network, cycle):
    shown = web(COORDINATOR).get(f"/workspace/cycles/{cycle}")
    assert shown.status_code == 200
    text = shown.text
    assert "<h1>Vår 2027</h1>" in text
    # every stage, in plan order, with its kind, due time in the cycle's zone and its timing
    positions = [text.index(f"<h3>{key} ") for key in STAGES]
    assert positions == sorted(positions)
    assert '<h3>workshop <span class="muted">(meeting)</span></h3>' in text
    # the workshop starts 2027-02-10 09:00 in Europe/Stockholm; its invite goes out at the start
    assert "<dt>Meeting starts</dt><dd>2027-02-10 09:00</dd>" in text
    assert "<dd>2027-01-20 09:00 <span" in text
    assert "<dd>2d before workshop</dd>" in text
    assert "<dd>7d after workshop</dd>" in text
    assert "(needs approval)" in text
    assert f"<dt>Plan version</dt><dd>{version(network, cycle)}</dd>" in text
    assert "Europe/Stockholm" in text
    for link in ("outbox", "audit", "report", "stages/invitation/drafts"):
        assert f'href="/workspace/cycles/{cycle}/{link}"' in text
    assert f"/workspace/cycles/{cycle}/change?op=reschedule&amp;stage=workshop" in text
    assert "No failed or uncertain messages." in text


def test_the_timeline_shows_message_counts_and_problems(web, network, settings, announced):
    with Session(network) as s:
        [first] = [m for m in queries.messages_of_stage(s, stage_id=_stage_id(s, announced))][:1]
        first.status, first.last_error = MessageStatus.failed, "550 no such mailbox"
        s.add(first)
        s.commit()
        address = first.to_email
    text = web(COORDINATOR).get(f"/workspace/cycles/{announced}").text
    assert f"<dd>1 failed, {EVERYONE - 1} sent</dd>" in text
    assert "550 no such mailbox" in text and address in text


def _stage_id(s: Session, cycle_id: int, key: str = "invitation") -> int:
    stage = queries.get_stage(s, cycle_id=cycle_id, key=key)
    assert stage.id is not None
    return stage.id


def test_an_unknown_cycle_is_the_404_page(web, cycle):
    client = web(COORDINATOR)
    for path in (f"/cycles/{cycle + 1}", "/cycles/99999999999", f"/cycles/{cycle + 1}/audit"):
        assert client.get("/workspace" + path).status_code == 404
    assert client.get(f"/workspace/cycles/{cycle}/stages/nope/drafts").status_code == 404
    assert client.get(f"/workspace/cycles/{cycle}/change?op=explode").status_code == 404


# -- changing the plan: preview, confirm ----------------------------------------------------


def test_rescheduling_the_workshop_previews_then_updates_every_calendar(
    web, network, settings, announced
):
    client = web(COORDINATOR)
    page = f"/workspace/cycles/{announced}/change?op=reschedule&stage=workshop"
    form = client.get(page)
    assert form.status_code == 200
    assert 'value="2027-02-10 09:00"' in form.text  # the current start, to edit
    before, at = plan_view(network, announced), "2027-02-17 09:00"

    preview = client.submit(
        page,
        f"/workspace/cycles/{announced}/change",
        {"op": "reschedule", "stage": "workshop", "at": at},
    )
    assert preview.status_code == 200
    expected = reschedule_stage(
        network, settings, cycle_id=announced, key="workshop", at=at, dry_run=True
    )
    shown = re.search(r'<pre class="effects">(.*?)</pre>', preview.text, re.S)
    assert shown and shown[1] == str(escape("\n".join(expected.lines())))
    assert plan_view(network, announced) == before  # a preview changes nothing

    confirm = form_values(preview.text, f"/workspace/cycles/{announced}/change/confirm")
    assert confirm["expect_version"] == str(expected.version[0])
    assert (confirm["op"], confirm["stage"], confirm["at"]) == ("reschedule", "workshop", at)
    done = client.post(
        f"/workspace/cycles/{announced}/change/confirm",
        data={**confirm, "reason": "the board meets that day"},
    )
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "Rescheduled workshop." in after.text
    assert starts(network, announced).startswith("2027-02-17T09:00")
    with Session(network) as s:
        [entry] = [
            e for e in queries.audit_log(s, cycle_id=announced) if e.action == "stage.reschedule"
        ]
    assert (entry.actor, entry.reason) == (COORDINATOR, "the board meets that day")

    seen = mail_counts(settings)
    tick(START + timedelta(hours=1))
    fresh = new_mail(settings, seen)
    assert len(fresh) == EVERYONE  # everyone invited gets the update
    for msgs in fresh.values():
        [update] = msgs
        calendar = next(p for p in update.walk() if p.get_content_type() == "text/calendar")
        assert "DTSTART;TZID=Europe/Stockholm:20270217T090000" in calendar.get_content()


def test_a_confirmation_on_a_stale_preview_is_refused_and_previewed_again(
    web, network, settings, cycle
):
    client = web(COORDINATOR)
    page = f"/workspace/cycles/{cycle}/change?op=reschedule&stage=workshop"
    preview = client.submit(
        page,
        f"/workspace/cycles/{cycle}/change",
        {"op": "reschedule", "stage": "workshop", "at": "2027-02-17 09:00"},
    )
    confirm = form_values(preview.text, f"/workspace/cycles/{cycle}/change/confirm")
    # Meanwhile another coordinator changes the plan.
    skip_stage(network, settings, cycle_id=cycle, key="workshop-reminder")
    before = plan_view(network, cycle)
    refused = client.post(f"/workspace/cycles/{cycle}/change/confirm", data=confirm)
    assert refused.status_code == 409
    assert "The plan changed since your preview" in refused.text
    assert "nothing was changed" in refused.text
    assert plan_view(network, cycle) == before
    again = form_values(refused.text, f"/workspace/cycles/{cycle}/change/confirm")
    assert again["expect_version"] == str(version(network, cycle))
    assert again["expect_version"] != confirm["expect_version"]
    # the fresh preview can be confirmed
    assert client.post(f"/workspace/cycles/{cycle}/change/confirm", data=again).status_code == 303
    assert starts(network, cycle).startswith("2027-02-17T09:00")


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        ({"stage": "workshop", "at": "2020-01-01 09:00"}, "at", "in the past"),
        ({"stage": "workshop", "at": "next tuesday"}, "at", "Invalid time 'next tuesday'"),
        ({"stage": "workshop", "at": ""}, "at", "Fill in"),
        ({"stage": "no-such-stage", "at": "2027-02-17 09:00"}, "stage", "no stage 'no-such-stage'"),
    ],
)
def test_bad_input_shows_the_form_again_with_the_error_beside_the_field(
    web, network, cycle, data, name, words
):
    client = web(COORDINATOR)
    before, ver = plan_view(network, cycle), version(network, cycle)
    page = f"/workspace/cycles/{cycle}/change?op=reschedule&stage=workshop"
    shown = client.submit(page, f"/workspace/cycles/{cycle}/change", {"op": "reschedule", **data})
    assert shown.status_code == 422
    assert words in field_error(shown.text, name)
    assert f'value="{data["at"]}"' in shown.text  # what was typed is kept
    # the same refusal on the confirmation
    confirm = {"op": "reschedule", "expect_version": str(ver), **data}
    again = client.submit(page, f"/workspace/cycles/{cycle}/change/confirm", confirm)
    assert again.status_code == 422
    assert words in field_error(again.text, name)
    assert plan_view(network, cycle) == before and version(network, cycle) == ver


def test_every_operation_has_a_form_that_previews(web, network, cycle):
    client = web(COORDINATOR)
    cases = {
        "move": {"stage": "workshop-reminder", "after": "followup"},
        "edit": {"stage": "followup", "approval": "yes"},
        "skip": {"stage": "workshop-reminder"},
        "cancel": {"stage": "followup-reminder"},
        "add": {
            "kind": "email",
            "key": "politicians",
            "template": "workshop-reminder",
            "after": "workshop",
            "offset": "1d",
            "audience": "role=politician",
        },
        "add-participants": {"emails": "anna.lindqvist@forsakringskassan.example"},
        "pause": {},
        "cancel-cycle": {},
    }
    before = plan_view(network, cycle)
    for op, data in cases.items():
        page = f"/workspace/cycles/{cycle}/change?op={op}"
        preview = client.submit(page, f"/workspace/cycles/{cycle}/change", {"op": op, **data})
        assert preview.status_code == 200, (op, preview.text)
        assert "Nothing has changed yet." in preview.text
    assert plan_view(network, cycle) == before
    # pause for real, then the page offers resume
    preview = client.submit(
        f"/workspace/cycles/{cycle}/change?op=pause",
        f"/workspace/cycles/{cycle}/change",
        {"op": "pause"},
    )
    confirm = form_values(preview.text, f"/workspace/cycles/{cycle}/change/confirm")
    assert client.post(f"/workspace/cycles/{cycle}/change/confirm", data=confirm).status_code == 303
    assert cycle_overview(network, cycle_id=cycle)["status"] == "paused"
    assert "?op=resume" in client.get(f"/workspace/cycles/{cycle}").text


# -- drafts and approval --------------------------------------------------------------------


def test_drafts_show_html_in_a_sandboxed_frame_and_approval_is_audited(
    web, network, settings, cycle
):
    tick(START)  # the invitation's drafts wait for approval
    client = web(COORDINATOR)
    page = f"/workspace/cycles/{cycle}/stages/invitation/drafts"
    shown = client.get(page)
    assert shown.status_code == 200
    result_html = shown.text
    assert "13 messages stored" in result_html
    frames = re.findall(
        r'<iframe class="draft" sandbox srcdoc="([^"]*)" title="([^"]+)">', result_html
    )
    assert frames, "no sandboxed frame"
    srcdoc = html.unescape(frames[0][0])
    assert "<html" in srcdoc.lower() or "<p" in srcdoc.lower()
    assert "<" not in frames[0][0]  # the HTML is escaped inside the attribute
    assert '<pre class="text" lang="sv" dir="ltr">' in result_html  # the text as it reads
    assert "Approve invitation" in result_html
    # one variant per language and role of the recipients
    with Session(network) as s:
        people = queries.members(s, cycle_id=cycle)
    groups = {(str(p.language), str(p.role)) for p, _ in people}
    assert len(frames) == len(groups)

    done = client.submit(
        page, f"/workspace/cycles/{cycle}/stages/invitation/approve", {"reason": "read it twice"}
    )
    assert done.status_code == 303
    assert "they are sent on the next tick" in client.get(done.headers["location"]).text
    with Session(network) as s:
        [entry] = [e for e in queries.audit_log(s, cycle_id=cycle) if e.action == "stage.approve"]
    assert (entry.actor, entry.reason, entry.stage_key) == (
        COORDINATOR,
        "read it twice",
        "invitation",
    )
    assert plan_view(network, cycle)["invitation"][2] == "done"
    # approving again is refused with a message, nothing changed
    again = client.submit(page, f"/workspace/cycles/{cycle}/stages/invitation/approve", {})
    assert again.status_code == 422 and "only pending stages or drafts" in again.text


def test_the_meeting_drafts_show_the_calendar_summary(web, network, announced):
    text = web(COORDINATOR).get(f"/workspace/cycles/{announced}/stages/workshop/drafts").text
    assert "<dt>Calendar</dt>" in text
    assert "2027-02-10 09:00–12:00 (Europe/Stockholm), Stadshuset [invitation]" in text


def test_a_signer_sees_only_their_organisations_drafts_and_cannot_approve(
    web, network, settings, cycle
):
    tick(START)
    with Session(network) as s:
        people = queries.members(s, cycle_id=cycle)
    own = {p.email for p, o in people if o.name == SIGNER_ORG}
    others = {p.email for p, o in people if o.name != SIGNER_ORG}
    assert own and others
    signer = web(SIGNER)
    page = f"/workspace/cycles/{cycle}/stages/invitation/drafts"
    shown = signer.get(page)
    assert shown.status_code == 200
    assert any(e in shown.text for e in own)
    assert not any(e in shown.text for e in others)
    assert "Approve invitation" not in shown.text and "/approve" not in shown.text
    # the approval itself is refused
    refused = signer.post(
        f"/workspace/cycles/{cycle}/stages/invitation/approve", data={"csrf": csrf_of(shown.text)}
    )
    assert refused.status_code == 403
    assert plan_view(network, cycle)["invitation"][2] == "awaiting_approval"
    # asking for someone of another organisation shows nothing of theirs
    other = sorted(others)[0]
    theirs = signer.get(page, params={"participant": other}).text
    assert f"No message of this stage goes to {SIGNER_ORG}" in theirs
    assert "<iframe" not in theirs
    # the rest of the cycle's pages are not for a signer
    for path in ("", "/outbox", "/audit", "/change?op=skip"):
        assert signer.get(f"/workspace/cycles/{cycle}{path}").status_code == 403


def test_a_hostile_name_is_shown_as_text(web, network, settings, tmp_path):
    from flows.people.participants import import_participants

    csv = tmp_path / "hostile.csv"
    csv.write_text(
        "name,email,organisation,role,language\n"
        "<script>alert(1)</script>,hostile@x.example,Försäkringskassan,professional,en\n",
        encoding="utf-8",
    )
    import_participants(network, csv)
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, approve=False)
    tick(START)
    text = (
        web(COORDINATOR)
        .get(
            f"/workspace/cycles/{cycle_id}/stages/invitation/drafts",
            params={"participant": "hostile@x.example"},
        )
        .text
    )
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


# -- the outbox and the audit log -----------------------------------------------------------


def test_the_outbox_lists_outcomes_and_resends_uncertain_after_a_confirmation(
    web, network, settings, announced
):
    with Session(network) as s:
        rows = queries.messages_of_stage(s, stage_id=_stage_id(s, announced))[:2]
        for m in rows:
            m.status = MessageStatus.uncertain
            s.add(m)
        s.commit()
        doubtful = {m.to_email for m in rows}
    client = web(COORDINATOR)
    outbox = client.get(f"/workspace/cycles/{announced}/outbox").text
    assert '<span class="n">2</span> uncertain' in outbox
    assert f'<span class="n">{2 * EVERYONE - 2}</span> sent' in outbox
    only = client.get(f"/workspace/cycles/{announced}/outbox", params={"status": "uncertain"}).text
    assert "2 messages with status uncertain" in only
    assert {e for e in doubtful if e in only} == doubtful
    bad = client.get(f"/workspace/cycles/{announced}/outbox", params={"status": "lost"})
    assert bad.status_code == 422 and "unknown status" in bad.text.lower()

    confirm = client.get(f"/workspace/cycles/{announced}/outbox/resend")
    assert 'A message is "uncertain" when the sender stopped' in html.unescape(confirm.text)
    assert "<strong>2</strong> uncertain messages" in confirm.text
    done = client.submit(
        f"/workspace/cycles/{announced}/outbox/resend",
        data={"reason": "the server went down"},
    )
    assert done.status_code == 303
    assert "Queued 2 uncertain messages again" in client.get(done.headers["location"]).text
    with Session(network) as s:
        statuses = {
            m.to_email: m.status
            for m in queries.messages_of_stage(s, stage_id=_stage_id(s, announced))
        }
        [entry] = [
            e for e in queries.audit_log(s, cycle_id=announced) if e.action == "outbox.resend"
        ]
    assert {statuses[e] for e in doubtful} == {MessageStatus.queued}
    assert (entry.actor, entry.reason) == (COORDINATOR, "the server went down")


def test_the_audit_log_page(web, network, settings, announced):
    skip_stage(network, settings, cycle_id=announced, key="workshop-reminder", reason="all came")
    text = web(COORDINATOR).get(f"/workspace/cycles/{announced}/audit").text
    assert '<th scope="col">Who</th>' in text
    assert "stage.skip" in text and "all came" in text and "workshop-reminder" in text
    with Session(network) as s:
        entries = queries.audit_log(s, cycle_id=announced)
    assert text.count("<tr><td>") == len(entries)


# -- forms and roles ------------------------------------------------------------------------


def _posts(cycle_id: int) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/cycles/{cycle_id}/change", {"op": "skip", "stage": "workshop-reminder"}),
        (
            f"/cycles/{cycle_id}/change/confirm",
            {"op": "skip", "stage": "workshop-reminder", "expect_version": "0"},
        ),
        (f"/cycles/{cycle_id}/stages/invitation/approve", {}),
        (f"/cycles/{cycle_id}/outbox/resend", {}),
    ]


def _state(engine: Any, cycle_id: int) -> tuple[Any, ...]:
    with Session(engine) as s:
        log = len(queries.audit_log(s, cycle_id=cycle_id))
        statuses = sorted(str(m.status) for m in queries.cycle_messages(s, cycle_id=cycle_id))
    return plan_view(engine, cycle_id), version(engine, cycle_id), log, statuses


def test_every_post_without_the_csrf_token_changes_nothing(web, network, cycle):
    client = web(COORDINATOR)
    client.get(f"/workspace/cycles/{cycle}")
    before = _state(network, cycle)
    for path, data in _posts(cycle):
        for token in ({}, {"csrf": "forged"}):
            refused = client.post("/workspace" + path, data={**data, **token})
            assert refused.status_code == 403, path
            assert "Nothing was changed" in refused.text
    assert _state(network, cycle) == before


def test_roles_viewer_is_refused_and_anonymous_is_sent_to_login(web, network, cycle):
    gets = [
        f"/cycles/{cycle}",
        f"/cycles/{cycle}/change?op=reschedule&stage=workshop",
        f"/cycles/{cycle}/stages/invitation/drafts",
        f"/cycles/{cycle}/outbox",
        f"/cycles/{cycle}/outbox/resend",
        f"/cycles/{cycle}/audit",
    ]
    viewer, anonymous = web(VIEWER), web()
    token = csrf_of(viewer.get("/workspace/account").text)
    before = _state(network, cycle)
    for path in gets:
        assert viewer.get("/workspace" + path).status_code == 403, path
        away = anonymous.get("/workspace" + path)
        assert away.status_code == 303 and away.headers["location"].startswith("/workspace/login")
    for path, data in _posts(cycle):
        assert viewer.post("/workspace" + path, data={**data, "csrf": token}).status_code == 403
        away = anonymous.post("/workspace" + path, data=data)
        assert away.status_code == 303 and away.headers["location"].startswith("/workspace/login")
    assert _state(network, cycle) == before


def test_the_outbox_pages_through_every_message_once(web, network, announced, monkeypatch):  # type: ignore[no-untyped-def]
    from flows.web.workspace import cycle as cycle_pages

    monkeypatch.setattr(cycle_pages, "OUTBOX_PAGE", 10)
    client = web(COORDINATOR)
    seen: list[str] = []
    for number in (1, 2, 3):
        got = client.get(f"/workspace/cycles/{announced}/outbox", params={"page": number}).text
        seen += re.findall(r'<tr><td class="n">(\d+)</td>', got)
        if number < 3:
            assert "Next<span" in got
    assert f"Messages 21–{2 * EVERYONE} of {2 * EVERYONE}" in got and "Next<span" not in got
    with Session(network) as s:
        every = [str(m.id) for m in queries.cycle_messages(s, cycle_id=announced)]
    assert seen == every  # each message on one page, in order, none left out
    # A page number past the end shows the last page, not nothing.
    beyond = client.get(f"/workspace/cycles/{announced}/outbox", params={"page": "99"}).text
    assert f"Messages 21–{2 * EVERYONE}" in beyond


def test_a_signer_starts_at_the_drafts_waiting_for_them(web, network, cycle):  # type: ignore[no-untyped-def]
    signer = web(SIGNER)
    assert "Nothing waits for approval now." in signer.get("/workspace/drafts").text
    tick(START)  # the invitation's drafts are written and wait
    home = signer.get("/workspace/")
    assert home.headers["location"] == "/workspace/drafts"
    listed = signer.get("/workspace/drafts").text
    assert "Försäkringskassan" in listed and "Drafts of invitation" in listed
    link = re.search(r'href="(/workspace/cycles/\d+/stages/invitation/drafts)"', listed)
    assert link is not None
    assert signer.get(link.group(1)).status_code == 200
    # Once approved, nothing waits.
    approve_stage(network, cycle_id=cycle, key="invitation")
    assert "Nothing waits for approval now." in signer.get("/workspace/drafts").text
