"""The workspace in a real headless Chromium (Debian's package) driven by Playwright: every
page checked by axe-core for each role, with JavaScript off, and nothing fetched from
anywhere but the app itself."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from flows.settings import Settings
from store.models import Participant
from tests.conftest import launch_learning_cycle, tick
from tests.smtpd import free_port
from tests.test_workspace_security import fill, who_may, workspace_routes
from tests.workspace import COORDINATOR, PASSWORD, SIGNER, VIEWER

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
# Where the screenshots go when SAMVERKAN_SCREENSHOTS names a folder (to look at them).
SHOTS = os.environ.get("SAMVERKAN_SCREENSHOTS")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason="no Chromium at /usr/bin/chromium (Debian's chromium package); "
        "make test installs it where apt-get can",
    ),
]


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
def site(network, accounts, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from flows.web.app import create_app

    port_base = "http://127.0.0.1:8000"
    monkeypatch.setenv("SAMVERKAN_BASE_URL", port_base)
    settings = Settings()
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, approve=False)
    tick(START)
    with Session(network) as s:
        person = s.exec(select(Participant)).first()
        assert person is not None
    values = {
        "cycle_id": str(cycle_id),
        "key": "invitation",
        "participant_id": str(person.id),
        "name": "learning-cycle",
        "template": "learning-cycle",
    }
    app = create_app(settings, network)
    for base in serve(app):
        yield {"base": base, "values": values, "app": app}


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
            for path in pages:
                if role not in who_may(path) or (path == "/" and role != "coordinator"):
                    continue
                page.goto(base + "/workspace" + fill(path, site["values"]))
                # axe runs as a script of its own, which a page without JavaScript cannot
                # have: a second context with scripts on checks the same address.
                checker = browser.new_context(viewport={"width": 1280, "height": 900})
                checker.add_cookies(context.cookies())
                checked = checker.new_page()
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
                checker.close()
                seen += 1
            context.close()
        browser.close()
    assert seen >= 8
    assert found == {}
    assert elsewhere == []
