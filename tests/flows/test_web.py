"""The participants' pages, reached by the personal links in the emails they received."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from flows.cycles.resequence import set_cycle_status
from flows.web.app import create_app
from messaging import links
from store.models import AccessToken, Cycle, CycleStatus, MeetingAttendee, Message, Response
from tests.conftest import launch_learning_cycle, read_maildir, tick
from tests.workspace import Client

TZ = ZoneInfo("Europe/Stockholm")
START = datetime.now(TZ).replace(microsecond=0) + timedelta(days=2)
WORKSHOP = START + timedelta(days=21)
SARA = "sara.ahmadi@goteborg.example"
ANNA = "anna.lindqvist@forsakringskassan.example"


def link(mail_dir: Path, who: str, kind: str, nth: int = -1) -> str:
    """The path of a personal link (/a/… or /r/…) in the nth message that has one."""
    found = []
    for msg in read_maildir(mail_dir)[who]:
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        found += re.findall(rf"http://127\.0\.0\.1:8000(/{kind}/[A-Za-z0-9_-]+)", text)
    return found[nth]


@pytest.fixture
def cycle(network, settings):  # type: ignore[no-untyped-def]
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, location="Stadshuset")
    tick(START)
    return cycle_id


# The app in-process through httpx's ASGI transport, no server (as datasette tests do); the
# same client the workspace's tests use (it keeps cookies: these pages set none).
Pages = Client


@pytest.fixture
def client(settings, network) -> Pages:  # type: ignore[no-untyped-def]
    return Pages(create_app(settings, network))


def test_rsvp_link_accepts_and_the_reminder_leaves_them_out(client, settings, network, cycle):
    path = link(Path(settings.mail_dir), SARA, "r")
    page = client.get(path)
    assert page.status_code == 200
    assert '<html lang="en" dir="ltr">' in page.text
    assert "Your answer now: no answer yet." in page.text
    done = client.post(path, data={"answer": "ACCEPTED"}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, f"{path}/thanks")
    thanks = client.get(f"{path}/thanks")
    assert "Thank you! We have noted your answer: you are coming." in thanks.text
    with Session(network) as s:
        stats = [a.partstat for a in s.exec(select(MeetingAttendee))]
    assert stats.count("ACCEPTED") == 1
    before = {k: len(v) for k, v in read_maildir(Path(settings.mail_dir)).items()}
    tick(WORKSHOP - timedelta(days=2))
    after = {k: len(v) for k, v in read_maildir(Path(settings.mail_dir)).items()}
    assert after[SARA] == before[SARA]  # no reminder for a yes
    assert after[ANNA] == before[ANNA] + 1


def test_answering_the_follow_up_on_the_personal_page(client, settings, network, cycle):
    tick(WORKSHOP + timedelta(days=7))
    path = link(Path(settings.mail_dir), ANNA, "a")
    page = client.get(path)
    assert page.status_code == 200 and '<html lang="sv" dir="ltr">' in page.text
    assert "På en skala från 0 till 10, var befinner sig vårt samarbete just nu?" in page.text
    assert page.text.count('type="radio" name="q_scale-now"') == 11
    assert '<label class="q" for="q_what-is-better">Vad är bättre sedan sist?</label>' in page.text
    sent = client.post(
        path,
        data={"q_scale-now": "6", "q_what-is-better": "Vi ringer varandra."},
        follow_redirects=True,
    )
    assert "Tack för dina svar!" in sent.text
    again = client.get(path)  # answers can be changed: the page shows what was given
    assert 'value="6" checked' in again.text and "Vi ringer varandra." in again.text
    client.post(path, data={"q_scale-now": "7", "q_what-is-better": ""})
    with Session(network) as s:
        rows = s.exec(select(Response)).all()
    assert [(r.question_id, r.scale_value, r.text) for r in rows] == [("scale-now", 7, None)]
    bad = client.post(path, data={"q_scale-now": "11"})
    assert bad.status_code == 422 and "välj en siffra från 0 till 10" in bad.text

    # The reminder goes only to those who have not answered, with the same link.
    tick(WORKSHOP + timedelta(days=12))
    mail = read_maildir(Path(settings.mail_dir))
    assert len(mail[ANNA]) == 4  # invitation, invite, reminder, follow-up: no nudge
    assert link(Path(settings.mail_dir), SARA, "a", -1) == link(
        Path(settings.mail_dir), SARA, "a", 0
    )

    # After the reflection the follow-up has closed: the link no longer opens it.
    tick(WORKSHOP + timedelta(days=14))
    closed = client.get(path)
    assert closed.status_code == 404 and "Sidan finns inte längre" in closed.text


def test_tokens_are_long_random_and_stored_only_as_hashes(client, settings, network, cycle):
    tick(WORKSHOP + timedelta(days=7))
    token = link(Path(settings.mail_dir), ANNA, "a").rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 bits in URL-safe base64
    with Session(network) as s:
        hashes = {t.token_hash for t in s.exec(select(AccessToken))}
        stored = " ".join(m.text + m.html for m in s.exec(select(Message)))
    assert links.token_hash(token) in hashes
    assert token not in hashes and token not in stored  # the outbox keeps placeholders only
    tokens = {link(Path(settings.mail_dir), p, "a").rsplit("/", 1)[1] for p in (ANNA, SARA)}
    assert len(tokens) == 2


@pytest.mark.parametrize("path", ["/a/" + "x" * 43, "/r/" + "A" * 43, "/a/short", "/nothing"])
def test_unknown_links_get_the_same_friendly_page(client, cycle, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert (
        "Sidan finns inte längre" in response.text
        and "This page is no longer here" in response.text
    )
    assert "Vår 2027" not in response.text  # reveals nothing


def test_an_rsvp_token_does_not_open_the_questions(client, settings, cycle):
    path = link(Path(settings.mail_dir), SARA, "r")
    assert client.get(path.replace("/r/", "/a/")).status_code == 404


def test_personal_pages_do_not_leak_their_link(client, settings, cycle) -> None:
    page = client.get(link(Path(settings.mail_dir), SARA, "r"))
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert client.get("/a/" + "x" * 43).headers["referrer-policy"] == "no-referrer"


def saved(engine) -> list[tuple[str, int | None, str | None]]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        rows = s.exec(select(Response).order_by(Response.question_id)).all()
    return [(r.question_id, r.scale_value, r.text) for r in rows]


def test_only_the_form_encoding_is_taken_and_the_rest_leaves_answers_alone(
    client, settings, network, cycle
):
    tick(WORKSHOP + timedelta(days=7))
    path = link(Path(settings.mail_dir), ANNA, "a")
    client.post(path, data={"q_scale-now": "6", "q_what-is-better": "Vi ringer varandra."})
    before = saved(network)
    assert before == [("scale-now", 6, None), ("what-is-better", None, "Vi ringer varandra.")]
    upload = client.post(
        path,
        data={"q_scale-now": "3"},
        files={"q_what-is-better": ("notes.txt", b"secret file", "text/plain")},
    )
    as_json = client.post(path, json={"q_scale-now": "2", "q_what-is-better": ""})
    as_text = client.post(path, content=b"q_scale-now=1", headers={"content-type": "text/plain"})
    nothing = client.post(path)
    for refused in (upload, as_json, as_text, nothing):
        assert refused.status_code == 415, refused.status_code
        assert '<html lang="sv" dir="ltr">' in refused.text
        assert "Skicka dina svar med formuläret på sidan" in refused.text
        assert "UploadFile" not in refused.text
    assert saved(network) == before  # nothing stored, nothing wiped
    # A form that leaves a question out does not clear that question's answer.
    client.post(path, data={"q_scale-now": "8"})
    assert saved(network) == [("scale-now", 8, None), before[1]]


def test_form_errors_speak_the_participants_language_without_internal_ids(
    client, settings, network, cycle
):
    tick(WORKSHOP + timedelta(days=7))
    anna = link(Path(settings.mail_dir), ANNA, "a")
    sara = link(Path(settings.mail_dir), SARA, "a")
    bad = client.post(anna, data={"q_scale-now": "11", "q_what-is-better": "Vi ringer varandra."})
    assert bad.status_code == 422
    assert "Något i formuläret stämde inte" in bad.text
    assert "välj en siffra från 0 till 10" in bad.text
    assert "Vi ringer varandra." in bad.text  # what they wrote is still in the form
    english = client.post(sara, data={"q_scale-now": "ten"})
    assert english.status_code == 422 and '<html lang="en" dir="ltr">' in english.text
    assert "choose a number from 0 to 10" in english.text
    for not_ascii in ("²", "٣"):  # digits to Python, not a number on the scale
        odd = client.post(sara, data={"q_scale-now": not_ascii})
        assert odd.status_code == 422 and "choose a number from 0 to 10" in odd.text
    wrong_rsvp = client.post(link(Path(settings.mail_dir), SARA, "r"), data={"answer": "SOON"})
    assert wrong_rsvp.status_code == 422 and "Please choose one of the answers" in wrong_rsvp.text
    for page in (bad, english, wrong_rsvp):
        body = page.text.split('<p class="error"', 1)[1].split("</p>", 1)[0]
        assert "scale-now" not in body and "SOON" not in body and "ACCEPTED" not in body
    assert saved(network) == []
    with Session(network) as s:
        assert {a.partstat for a in s.exec(select(MeetingAttendee))} == {"NEEDS-ACTION"}


def test_rsvp_refuses_what_is_not_a_form(client, settings, network, cycle):
    path = link(Path(settings.mail_dir), SARA, "r")
    refused = client.post(path, json={"answer": "ACCEPTED"})
    assert refused.status_code == 415 and '<html lang="en" dir="ltr">' in refused.text
    with Session(network) as s:
        assert {a.partstat for a in s.exec(select(MeetingAttendee))} == {"NEEDS-ACTION"}


@pytest.mark.parametrize("ending", ["completed", "cancelled"])
def test_rsvp_links_close_with_their_cycle(client, settings, network, cycle, ending: str):
    path = link(Path(settings.mail_dir), SARA, "r")
    assert client.get(path).status_code == 200
    if ending == "completed":
        tick(WORKSHOP + timedelta(days=14))  # the reflection has run: the cycle is over
    else:
        set_cycle_status(network, settings, cycle_id=cycle, to=CycleStatus.cancelled)
    with Session(network) as s:
        assert s.get(Cycle, cycle).status == ending  # type: ignore[union-attr]
    for response in (
        client.get(path),
        client.post(path, data={"answer": "ACCEPTED"}),
        client.get(f"{path}/thanks"),
    ):
        assert response.status_code == 404 and "Sidan finns inte längre" in response.text
    with Session(network) as s:
        assert "ACCEPTED" not in {a.partstat for a in s.exec(select(MeetingAttendee))}
