"""The workspace's sign-off pages: a signer of an organisation a stage names reads its texts
and signs them, or asks for a change; nobody else can sign, and a text that changed since it
was read is never signed.

Each test goes through the pages as a browser would (tests/workspace.py) and checks the
record through the application (flows/cycles/signoff.py), as the CLI reads it.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from flows.cycles.signoff import signoff_status
from flows.people.accounts import add_account
from tests.conftest import launch_learning_cycle
from tests.workspace import COORDINATOR, PASSWORD, SIGNER, SIGNER_ORG, VIEWER, csrf_of

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
OTHER = "maria@af.example"
OTHER_ORG = "Arbetsförmedlingen"
SIGNING = [SIGNER_ORG, OTHER_ORG]


@pytest.fixture
def cycle(network, settings, accounts) -> int:  # type: ignore[no-untyped-def]
    """A launched learning cycle whose invitation two agencies sign."""
    add_account(network, email=OTHER, role="signer", organisation=OTHER_ORG, password=PASSWORD)
    return launch_learning_cycle(
        network, settings, START, WORKSHOP, approve=False, signoff={"invitation": SIGNING}
    )


def address(cycle_id: int, tail: str = "") -> str:
    return f"/workspace/cycles/{cycle_id}/stages/invitation/signoff{tail}"


def seen_of(page: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="seen" value="([0-9a-f]{64})">', page)


def status(network, settings, cycle_id):  # type: ignore[no-untyped-def]
    return signoff_status(network, settings, cycle_id=cycle_id, key="invitation")


def signed_by(network, settings, cycle_id) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {
        o.organisation: len(o.signed) for o in status(network, settings, cycle_id).organisations
    }


def test_a_signer_reads_both_languages_and_signs(web, network, settings, cycle) -> None:  # type: ignore[no-untyped-def]
    lars = web(SIGNER)
    waiting = lars.get("/workspace/drafts")
    assert waiting.status_code == 200
    assert address(cycle) in waiting.text  # the list links to the sign-off page

    page = lars.get(address(cycle))
    assert page.status_code == 200
    texts = status(network, settings, cycle).texts
    assert {t.language for t in texts} == {"sv", "en"}
    for t in texts:
        assert t.short in page.text
    assert "Välkommen till Vår 2027" in page.text and "Welcome to Vår 2027" in page.text
    # The personal parts are marked, with a sample person's values, and said to be personal.
    assert "<mark>Alex" in page.text and "(personal: first name)" in page.text
    assert "⟦" not in page.text
    assert 'sandbox srcdoc="' in page.text
    assert sorted(seen_of(page.text)) == sorted(t.content_hash for t in texts)

    done = lars.post(
        address(cycle, "/sign"), data={"csrf": csrf_of(page.text), "seen": seen_of(page.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == address(cycle) + "?done=signed"
    assert signed_by(network, settings, cycle) == {SIGNER_ORG: 2, OTHER_ORG: 0}

    after = lars.get(done.headers["location"])
    assert "Signed." in after.text
    assert SIGNER in after.text and "waiting for Arbetsförmedlingen" in after.text
    assert seen_of(after.text) == []  # nothing left for them to sign
    # Gone from their list; still in the other agency's.
    assert address(cycle) not in lars.get("/workspace/drafts").text
    assert address(cycle) in web(OTHER).get("/workspace/drafts").text

    # The coordinator's cycle page says who signed which text and what is missing.
    plan = web(COORDINATOR).get(f"/workspace/cycles/{cycle}")
    assert "waiting for Arbetsförmedlingen (en, sv)" in plan.text
    assert address(cycle) in plan.text
    assert SIGNER in plan.text


def test_a_signer_of_another_organisation_cannot_sign(
    web, network, settings, cycle, accounts
) -> None:  # type: ignore[no-untyped-def]
    add_account(
        network,
        email="olle@goteborg.example",
        role="signer",
        organisation="Göteborgs Stad",
        password=PASSWORD,
    )
    olle = web("olle@goteborg.example")
    assert olle.get(address(cycle)).status_code == 403
    seen = [t.content_hash for t in status(network, settings, cycle).texts]
    token = csrf_of(olle.get("/workspace/account").text)
    got = olle.post(address(cycle, "/sign"), data={"csrf": token, "seen": seen})
    assert got.status_code == 403
    assert "Göteborgs Stad, which is not asked to sign invitation" in got.text
    got = olle.post(address(cycle, "/change"), data={"csrf": token, "comment": "hm"})
    assert got.status_code == 403
    assert signed_by(network, settings, cycle) == {SIGNER_ORG: 0, OTHER_ORG: 0}
    assert status(network, settings, cycle).comments == []


def test_a_viewer_reads_and_cannot_sign(web, network, settings, cycle) -> None:  # type: ignore[no-untyped-def]
    vera = web(VIEWER)
    page = vera.get(address(cycle))
    assert page.status_code == 200
    assert "Welcome to Vår 2027" in page.text
    assert "/signoff/sign" not in page.text and "/signoff/change" not in page.text
    seen = [t.content_hash for t in status(network, settings, cycle).texts]
    got = vera.post(address(cycle, "/sign"), data={"csrf": csrf_of(page.text), "seen": seen})
    assert got.status_code == 403
    assert signed_by(network, settings, cycle) == {SIGNER_ORG: 0, OTHER_ORG: 0}


def test_the_coordinator_cannot_sign_but_answers(web, network, settings, cycle) -> None:  # type: ignore[no-untyped-def]
    anna = web(COORDINATOR)
    page = anna.get(address(cycle))
    assert "/signoff/sign" not in page.text
    seen = [t.content_hash for t in status(network, settings, cycle).texts]
    got = anna.post(address(cycle, "/sign"), data={"csrf": csrf_of(page.text), "seen": seen})
    assert got.status_code == 403 and "coordinators approve, signers sign" in got.text
    got = anna.post(
        address(cycle, "/change"), data={"csrf": csrf_of(page.text), "comment": "Noted."}
    )
    assert got.status_code == 303
    [comment] = status(network, settings, cycle).comments
    assert comment.author == COORDINATOR and comment.organisation is None


def test_a_stale_text_is_not_signed(web, network, settings, cycle) -> None:  # type: ignore[no-untyped-def]
    lars = web(SIGNER)
    page = lars.get(address(cycle))
    stale = ["0" * 64, *seen_of(page.text)[1:]]
    got = lars.post(address(cycle, "/sign"), data={"csrf": csrf_of(page.text), "seen": stale})
    assert got.status_code == 422
    assert "changed since you read it; nothing was signed" in got.text
    assert signed_by(network, settings, cycle) == {SIGNER_ORG: 0, OTHER_ORG: 0}
    # A form without the hashes read signs nothing either.
    got = lars.post(address(cycle, "/sign"), data={"csrf": csrf_of(page.text)})
    assert got.status_code == 422
    assert signed_by(network, settings, cycle) == {SIGNER_ORG: 0, OTHER_ORG: 0}


def test_asking_for_a_change_keeps_the_comment(web, network, settings, cycle) -> None:  # type: ignore[no-untyped-def]
    lars = web(SIGNER)
    page = lars.get(address(cycle))
    got = lars.post(address(cycle, "/change"), data={"csrf": csrf_of(page.text), "comment": "  "})
    assert got.status_code == 422 and "The comment is empty: say what should change." in got.text
    words = "Skriv <b>Försäkringskassan</b> i stället för ”vi”."
    got = lars.post(address(cycle, "/change"), data={"csrf": csrf_of(page.text), "comment": words})
    assert got.status_code == 303
    [comment] = status(network, settings, cycle).comments
    assert (comment.author, comment.organisation, comment.text) == (SIGNER, SIGNER_ORG, words)
    thread = lars.get(got.headers["location"]).text
    assert "Your request for a change is kept" in thread
    assert "Skriv &lt;b&gt;Försäkringskassan&lt;/b&gt;" in thread
    assert signed_by(network, settings, cycle) == {SIGNER_ORG: 0, OTHER_ORG: 0}
    # The other agency reads the thread too.
    assert "Skriv &lt;b&gt;" in web(OTHER).get(address(cycle)).text


def test_a_stage_without_sign_off_says_so(web, cycle) -> None:  # type: ignore[no-untyped-def]
    got = web(COORDINATOR).get(f"/workspace/cycles/{cycle}/stages/workshop/signoff")
    assert got.status_code == 404 and "needs no sign-off" in got.text
    assert web(COORDINATOR).get(f"/workspace/cycles/{cycle}/stages/nope/signoff").status_code == 404


def test_a_stage_due_without_its_signatures_is_named_on_the_coordinators_overview(
    web, network, settings, cycle
) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import read_maildir, tick

    anna = web(COORDINATOR)
    assert "waiting for sign-off" not in anna.get("/workspace/").text  # not due yet
    report = tick(START.astimezone(ZoneInfo("UTC")))
    assert [(s.key, s.status) for _, s in report.stages] == [("invitation", "waiting")]
    overview = anna.get("/workspace/")
    assert "1 stage is due and not sent, waiting for sign-off" in overview.text
    assert address(cycle) in overview.text
    # ... and by email, once.
    tick(START.astimezone(ZoneInfo("UTC")))
    told = read_maildir(settings.mail_dir).get(settings.reflection_to, [])
    overdue = [
        m
        for m in told
        if "waiting for sign-off" in m["Subject"].lower()
        or "väntar på underskrift" in m["Subject"].lower()
    ]
    assert len(overdue) == 1, [m["Subject"] for m in told]
    # Once both have signed, the overview no longer names it.
    for who in (SIGNER, OTHER):
        from flows.cycles.signoff import sign

        sign(network, settings, cycle_id=cycle, key="invitation", email=who)
    assert "waiting for sign-off" not in anna.get("/workspace/").text
