"""The workspace in a real headless Chromium (Debian's package) driven by Playwright: every
page checked by axe-core for each role, with JavaScript off, and nothing fetched from
anywhere but the app itself."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from flows.settings import Settings
from store import queries
from tests.conftest import PAGES_ON_SQLITE, tick
from tests.e2e.test_browser import CHROMIUM, FLAGS, NEEDS_CHROMIUM
from tests.flows.test_resequence import START
from tests.flows.test_workspace_security import fill, launched, who_may, workspace_routes
from tests.smtpd import free_port
from tests.workspace import COORDINATOR, PASSWORD, SIGNER, VIEWER

TZ = ZoneInfo("Europe/Stockholm")
# Where the screenshots go when SAMVERKAN_SCREENSHOTS names a folder (to look at them).
SHOTS = os.environ.get("SAMVERKAN_SCREENSHOTS")

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM, PAGES_ON_SQLITE]


def serve(app: Any) -> Iterator[str]:
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the web server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def site(
    network, accounts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from flows.web.app import create_app

    port_base = "http://127.0.0.1:8000"
    monkeypatch.setenv("SAMVERKAN_BASE_URL", port_base)
    settings = Settings()
    values = launched(network, settings)
    # One address has bounced, so that the pages that say so are checked too (nothing was sent
    # yet, so no delivery report could be tied to it: the state is set as one would leave it).
    with Session(network) as s:
        per = queries.find_participant(s, email="per.holm@vgregion.example")
        assert per is not None
        per.bounced_at, per.bounce_reason = START, "5.1.1 550 5.1.1 User unknown"
        s.add(per)
        s.commit()
    app = create_app(settings, network)
    for base in serve(app):
        yield {"base": base, "values": values, "app": app}


@pytest.fixture
def fresh(accounts, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The workspace over a store with accounts and nothing else."""
    from flows.web.app import create_app

    monkeypatch.setenv("SAMVERKAN_BASE_URL", "http://127.0.0.1:8000")
    for base in serve(create_app(Settings(), accounts)):
        yield {"base": base}


def tick_now(now: datetime) -> None:
    """The background tick, run beside the browser (Playwright's own loop runs in this
    thread, and a tick runs one of its own)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(tick, now).result()


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/workspace/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/login" not in u)


def test_every_page_passes_axe_for_every_role_without_javascript(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base = site["base"]
    # Every page; not the downloads (export, report.md, indicators.csv) nor the stylesheet.
    pages = sorted(
        {
            p
            for m, p in workspace_routes(site["app"])
            if m == "GET" and not p.endswith(("/export", ".{fmt}", ".css"))
        }
    )
    found: dict[str, Any] = {}
    elsewhere: list[str] = []
    seen = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for role, email in (("coordinator", COORDINATOR), ("signer", SIGNER), ("viewer", VIEWER)):
            context = browser.new_context(
                java_script_enabled=False, viewport={"width": 1280, "height": 900}
            )
            context.on(
                "request",
                lambda r: (
                    elsewhere.append(r.url)
                    if not r.url.startswith((base, "about:", "data:"))
                    else None
                ),
            )
            page = context.new_page()
            sign_in(page, base, email)
            # axe runs as a script of its own, which a page without JavaScript cannot have: a
            # second context with scripts on, signed in as the same role, checks each address.
            checker = browser.new_context(viewport={"width": 1280, "height": 900})
            checker.add_cookies(context.cookies())
            checked = checker.new_page()
            for path in pages:
                if role not in who_may(path) or (path == "/" and role != "coordinator"):
                    continue
                page.goto(base + "/workspace" + fill(path, site["values"]))
                checked.goto(page.url)
                results = Axe().run(checked, options={"resultTypes": ["violations"]})
                violations = {
                    v["id"]: [n["target"] for n in v["nodes"]]
                    for v in results.response["violations"]
                }
                if violations:
                    found[f"{role} {path}"] = violations
                if SHOTS:
                    name = (role + path).replace("/", "_").replace("{", "").replace("}", "")
                    page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)
                seen += 1
            checker.close()
            context.close()
        browser.close()
    assert seen >= 8
    assert found == {}
    assert elsewhere == []


def test_a_coordinators_week_in_the_browser(fresh, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Log in, import the network (a bad row shown, fixed, imported), launch the learning
    cycle, preview and approve the invitation, reschedule the workshop through preview and
    confirm, see the updates in the outbox, read the report; with JavaScript off, and what
    the participants received read from the mail transport."""
    from playwright.sync_api import expect, sync_playwright

    from tests.conftest import EXAMPLE_CSV, read_maildir

    base = fresh["base"]
    mail = Path(settings.mail_dir)
    good = EXAMPLE_CSV.read_text(encoding="utf-8")
    bad = tmp_path / "network.csv"
    bad.write_text(
        good.replace(
            "Lars Ek,lars.ek@goteborg.example,Göteborgs Stad,professional",
            "Lars Ek,lars.ek@goteborg.example,Göteborgs Stad,chef",
        ),
        encoding="utf-8",
    )
    fixed = tmp_path / "network-fixed.csv"
    fixed.write_text(good, encoding="utf-8")
    start = datetime(2027, 3, 1, 9, 0, tzinfo=TZ)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": 1280, "height": 900}
        )
        page = context.new_page()
        sign_in(page, base, COORDINATOR)
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview")

        # The network: one bad row is shown beside its error and nothing is imported.
        page.get_by_role("link", name="Network").click()
        page.goto(f"{base}/workspace/network/import")
        page.get_by_label("CSV file").set_input_files(str(bad))
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_text("nothing was imported", exact=False).first).to_be_visible()
        row = page.get_by_role("row").filter(has_text="lars.ek@goteborg.example")
        expect(row).to_contain_text("chef")
        expect(row).to_contain_text("role")
        page.get_by_label("CSV file").set_input_files(str(fixed))
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_role("status")).to_contain_text("mported")
        expect(page.get_by_role("rowheader", name="Lars Ek", exact=True)).to_be_visible()

        # Launch the learning cycle from its template.
        page.get_by_role("link", name="Templates").click()
        page.get_by_role("link", name="learning-cycle").first.click()
        page.get_by_role("link", name=re.compile("Launch a cycle")).first.click()
        page.get_by_label("Name of the cycle").fill("Vår 2027")
        page.get_by_label("Starts").fill("2027-03-01T09:00")
        page.get_by_label("Workshop at").fill("2027-03-22T09:00")
        page.get_by_label("Location").fill("Stadshuset")
        page.get_by_role("button", name="Launch the cycle").click()
        page.wait_for_url(re.compile(r"/workspace/cycles/\d+$"))
        cycle_url = page.url
        expect(page.get_by_role("heading", level=1)).to_have_text("Vår 2027")

        # The tick drafts the invitation; the coordinator reads it and approves.
        tick_now(start)
        page.goto(cycle_url)
        page.get_by_role("link", name="Drafts of invitation", exact=True).click()
        expect(page.locator("iframe[sandbox]").first).to_be_attached()
        expect(page.get_by_text("Hej Anna,").first).to_be_visible()
        page.get_by_label("Reason").fill("Read by the steering group")
        page.get_by_role("button", name="Approve invitation").click()
        expect(page.get_by_role("status")).to_contain_text("pprov")
        assert read_maildir(mail) == {}  # approved, not yet sent: the next tick sends
        tick_now(start)
        received = read_maildir(mail)
        assert len(received) == 13
        assert all(len(msgs) == 2 for msgs in received.values())  # invitation + calendar invite

        # Reschedule the workshop: a preview first, then exactly that.
        page.goto(cycle_url)
        page.get_by_role("link", name="Reschedule workshop", exact=True).click()
        page.get_by_label("New time").fill("2027-03-24 13:00")
        page.get_by_role("button", name="Preview the effects").click()
        effects = page.locator("pre.effects")
        expect(effects).to_contain_text("reschedule workshop")
        assert not any(len(m) > 2 for m in read_maildir(mail).values())  # nothing sent yet
        page.get_by_role("button", name=re.compile("^Confirm")).click()
        page.wait_for_url(re.compile(r"/workspace/cycles/\d+\?"))
        expect(page.get_by_role("status")).to_contain_text("Rescheduled workshop")
        tick_now(start + timedelta(hours=1))

        # The outbox shows the updates; every participant's calendar got the new time.
        page.get_by_role("link", name=re.compile("^Outbox")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Outbox")
        expect(page.get_by_text("workshop").first).to_be_visible()
        for who, msgs in read_maildir(mail).items():
            latest = msgs[-1]
            assert len(msgs) == 3, who
            ics = next(part for part in latest.walk() if part.get_content_type() == "text/calendar")
            body = ics.get_content()
            assert "METHOD:REQUEST" in body and "SEQUENCE:1" in body, who
            assert "20270324T130000" in body, who

        # The report.
        page.goto(cycle_url)
        page.get_by_role("link", name="Reflection report").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Vår 2027")
        if SHOTS:
            page.goto(base + "/workspace/")
            page.screenshot(path=str(Path(SHOTS) / "week-overview.png"))
            page.goto(cycle_url)
            page.screenshot(path=str(Path(SHOTS) / "week-cycle.png"))
        context.close()
        browser.close()


def test_the_workspace_works_by_keyboard(site) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect, sync_playwright

    base = site["base"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{base}/workspace/login")
        # Tab from the top: the skip link first, then the form, and Enter sends it.
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        for _ in range(5):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "email":
                break
        expect(page.get_by_label("Email address")).to_be_focused()
        page.keyboard.type(COORDINATOR)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/workspace/")
        # The menu is reached by Tab and followed by Enter.
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Network":
                break
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/workspace/network")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        browser.close()


def test_a_signer_reads_and_signs_in_the_browser(network, accounts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The signer of one agency opens the sign-off page from their list, reads both
    languages, signs, and sees the signature; the page passes axe."""
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    from flows.web.app import create_app
    from tests.conftest import launch_learning_cycle

    monkeypatch.setenv("SAMVERKAN_BASE_URL", "http://127.0.0.1:8000")
    settings = Settings()
    start = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
    cycle_id = launch_learning_cycle(
        network,
        settings,
        start,
        datetime(2027, 2, 10, 9, 0, tzinfo=TZ),
        approve=False,
        signoff={"invitation": ["Försäkringskassan", "Arbetsförmedlingen"]},
    )
    for base in serve(create_app(settings, network)):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            context = browser.new_context(
                java_script_enabled=False, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            sign_in(page, base, SIGNER)
            expect(page.get_by_role("heading", level=1)).to_have_text("Waiting for your signature")
            page.get_by_role("link", name="Sign-off of invitation in Vår 2027").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Sign-off of invitation")
            expect(page.get_by_role("heading", name="Swedish")).to_be_visible()
            expect(page.get_by_role("heading", name="English")).to_be_visible()
            expect(page.get_by_text("Välkommen till Vår 2027").first).to_be_visible()
            expect(page.get_by_text("Welcome to Vår 2027").first).to_be_visible()
            expect(page.locator("pre.text mark").first).to_contain_text("Alex")
            expect(page.locator("iframe[sandbox]")).to_have_count(2)

            checker = browser.new_context(viewport={"width": 1280, "height": 900})
            checker.add_cookies(context.cookies())
            checked = checker.new_page()
            checked.goto(page.url)
            results = Axe().run(checked, options={"resultTypes": ["violations"]})
            assert {
                v["id"]: [n["target"] for n in v["nodes"]] for v in results.response["violations"]
            } == {}
            checker.close()
            if SHOTS:
                # A full-page capture leaves the sandboxed frames blank: make the viewport
                # as tall as the page instead.
                height = page.evaluate("document.documentElement.scrollHeight")
                page.set_viewport_size({"width": 1280, "height": height})
                page.screenshot(path=str(Path(SHOTS) / "workspace-signoff.png"))
                page.set_viewport_size({"width": 1280, "height": 900})

            page.get_by_role("button", name="Sign invitation for Försäkringskassan").click()
            page.wait_for_url(re.compile(r"/signoff\?done=signed$"))
            expect(page.get_by_role("status")).to_contain_text("Signed.")
            row = page.get_by_role("row").filter(has_text="Försäkringskassan")
            expect(row).to_contain_text(f"{SIGNER} signed the Swedish text")
            expect(row).to_contain_text(f"{SIGNER} signed the English text")
            expect(page.get_by_text("waiting for Arbetsförmedlingen (en, sv)")).to_be_visible()
            expect(page.get_by_role("button", name=re.compile("^Sign invitation"))).to_have_count(0)
            context.close()
            browser.close()
    from flows.cycles.signoff import signoff_status

    state = signoff_status(network, settings, cycle_id=cycle_id, key="invitation")
    assert [o.organisation for o in state.organisations if not o.missing] == ["Försäkringskassan"]
