"""The key pages in a real headless Chromium (Debian's package) driven by Playwright."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from flows.settings import Settings
from store.models import MeetingAttendee, Participant, Response
from tests.conftest import PAGES_ON_SQLITE, launch_learning_cycle, read_maildir, tick
from tests.smtpd import free_port

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
TZ = ZoneInfo("Europe/Stockholm")
START = datetime.now(TZ).replace(microsecond=0) + timedelta(days=2)
WORKSHOP = START + timedelta(days=21)

# What every browser test is marked with: skipped, saying why, where Chromium is missing.
NEEDS_CHROMIUM = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="no Chromium at /usr/bin/chromium (Debian's chromium package); "
    "make test installs it where apt-get can",
)
pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM, PAGES_ON_SQLITE]


@pytest.fixture
def server(network, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Settings]]:
    import uvicorn

    from flows.web.app import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("SAMVERKAN_BASE_URL", base)
    settings = Settings()
    config = uvicorn.Config(
        create_app(settings, network), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the web server did not start"
    yield base, settings
    srv.should_exit = True
    thread.join(timeout=10)


def link(mail_dir: Path, who: str, base: str, kind: str) -> str:
    for msg in reversed(read_maildir(mail_dir)[who]):
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        found = re.findall(rf"{re.escape(base)}/{kind}/[A-Za-z0-9_-]+", text)
        if found:
            return found[0]
    raise AssertionError(f"no /{kind}/ link for {who}")


def test_rsvp_and_answers_in_a_real_browser(network, server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, settings = server
    launch_learning_cycle(network, settings, START, WORKSHOP, location="Stadshuset")
    tick(START)
    tick(WORKSHOP + timedelta(days=7))
    mail = Path(settings.mail_dir)
    who = "sara.ahmadi@goteborg.example"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone

        page.goto(link(mail, who, base, "r"))
        page.get_by_role("button", name="Yes, I am coming").click()
        expect(page.get_by_role("status")).to_have_text(
            "Thank you! We have noted your answer: you are coming."
        )

        page.goto(link(mail, who, base, "a"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Vår 2027")
        scale = page.get_by_role("group", name=re.compile("On a scale from 0 to 10"))
        scale.get_by_label("6", exact=True).check()
        page.keyboard.press("ArrowRight")  # the scale works by keyboard: 6 -> 7
        expect(scale.get_by_label("7", exact=True)).to_be_checked()
        page.get_by_label("What is better since last time?").fill(
            "I met one person who knew my whole story."
        )
        page.screenshot(path=str(tmp_path / "answers.png"), full_page=True)
        page.get_by_role("button", name="Send my answers").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Thank you for your answers!")
        browser.close()

    with Session(network) as s:
        answers = {(r.question_id, r.scale_value, r.text) for r in s.exec(select(Response))}
        accepted = [a for a in s.exec(select(MeetingAttendee)) if a.partstat == "ACCEPTED"]
    assert answers == {
        ("scale-now", 7, None),
        ("what-is-better", None, "I met one person who knew my whole story."),
    }
    assert len(accepted) == 1


def test_unsubscribing_in_a_real_browser(network, server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, settings = server
    launch_learning_cycle(network, settings, START, WORKSHOP, location="Stadshuset")
    tick(START)
    who = "anna.lindqvist@forsakringskassan.example"
    header = str(read_maildir(Path(settings.mail_dir))[who][-1]["List-Unsubscribe"])
    url = next(e.strip(" <>") for e in header.split(",") if e.strip(" <>").startswith(base))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_have_text("Inga fler mejl")
        page.screenshot(path=str(tmp_path / "unsubscribe.png"), full_page=True)
        page.get_by_role("button", name="Sluta skicka mejl till mig").click()
        expect(page.get_by_role("status")).to_contain_text("Vi skickar inga fler mejl till dig.")
        browser.close()

    with Session(network) as s:
        anna = s.exec(select(Participant).where(Participant.email == who)).one()
    assert not anna.consent
