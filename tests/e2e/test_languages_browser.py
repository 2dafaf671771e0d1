"""Arabic, right to left, in a real headless Chromium: the follow-up page (checked by axe-core
and answered without JavaScript) and an email as a mail client shows its HTML part.

With SAMVERKAN_SCREENSHOTS naming a folder the screenshots are kept there to be looked at."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import PAGES_ON_SQLITE, read_maildir, tick
from tests.e2e.test_browser import (
    CHROMIUM,
    FLAGS,
    NEEDS_CHROMIUM,
    server,  # noqa: F401  (the fixture: the pages on a real port)
)
from tests.flows.test_languages import (
    OMAR,
    SCALE_QUESTION,
    START,
    WORKSHOP,
    five,  # noqa: F401  (the fixture: the network in 5 languages)
    html_of,
    launch,
)

SHOTS = os.environ.get("SAMVERKAN_SCREENSHOTS")

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM, PAGES_ON_SQLITE]


def shot(tmp_path: Path, name: str) -> str:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)


def violations(page, tags: list[str] | None = None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from axe_playwright_python.sync_playwright import Axe

    options: dict = {"resultTypes": ["violations"]}  # type: ignore[type-arg]
    if tags:
        options["runOnly"] = {"type": "tag", "values": tags}
    results = Axe().run(page, options=options)
    return {v["id"]: [n["target"] for n in v["nodes"]] for v in results.response["violations"]}


def test_the_arabic_follow_up_page_reads_right_to_left_and_passes_axe(
    five,  # noqa: F811
    server,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.test_browser import link

    base, settings = server
    launch(five, settings)
    tick(START)
    tick(WORKSHOP + timedelta(days=7))
    url = link(Path(settings.mail_dir), OMAR, base, "a")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 480, "height": 900}, locale="ar")
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("html")).to_have_attribute("lang", "ar")
        legend = page.get_by_role("group", name=SCALE_QUESTION["ar"])
        expect(legend).to_be_visible()
        # Laid out right to left: the heading starts at the right edge, the scale's 0 is the
        # rightmost choice.
        heading = page.get_by_role("heading", level=1).bounding_box()
        zero = page.get_by_role("radio", name="0", exact=True).bounding_box()
        ten = page.get_by_role("radio", name="10", exact=True).bounding_box()
        assert heading and zero and ten and zero["x"] > ten["x"]
        found = violations(page)
        page.screenshot(path=shot(tmp_path, "followup-ar.png"), full_page=True)
        browser.close()
    assert found == {}

    # Without JavaScript the page is answered as with it.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(java_script_enabled=False, locale="ar")
        page = context.new_page()
        page.goto(url)
        page.get_by_role("radio", name="7", exact=True).check()
        page.get_by_role("button", name="إرسال إجاباتي").click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.url.endswith("/thanks")
        page.screenshot(path=shot(tmp_path, "followup-ar-thanks.png"), full_page=True)
        browser.close()


def test_an_arabic_email_reads_right_to_left_in_a_browser(
    five,  # noqa: F811
    server,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, settings = server
    launch(five, settings)
    tick(START)
    invitation = read_maildir(Path(settings.mail_dir))[OMAR][0]
    email = tmp_path / "invitation-ar.html"
    email.write_text(html_of(invitation), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 600, "height": 900})
        page.goto(email.as_uri())
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        # The first paragraph (the greeting) ends at the right edge of the text column.
        first = page.locator("p").first.bounding_box()
        name = page.locator("bdi", has_text="Omar").first.bounding_box()
        assert first and name and name["x"] > first["x"] + first["width"] / 2
        # An email has no landmarks of a page: checked against WCAG A and AA.
        found = violations(page, ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"])
        page.screenshot(path=shot(tmp_path, "invitation-ar.png"), full_page=True)
        browser.close()
    assert found == {}


def test_the_other_arabic_pages_pass_axe(
    five,  # noqa: F811
    server,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The thanks page, the RSVP page, the unsubscribe page, and the page of an unknown link
    (which speaks every language, Arabic among them)."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.test_browser import link

    base, settings = server
    launch(five, settings)
    tick(START)
    tick(WORKSHOP + timedelta(days=7))
    mail = Path(settings.mail_dir)
    answers = link(mail, OMAR, base, "a")
    pages = {
        "thanks": (answers + "/thanks", "rtl"),
        "rsvp": (link(mail, OMAR, base, "r"), "rtl"),
        "unsubscribe": (unsubscribe_link(mail, base), "rtl"),
        "gone": (base + "/a/no-such-link", "ltr"),
    }
    found = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 480, "height": 900}, locale="ar")
        for name, (url, direction) in pages.items():
            page.goto(url)
            expect(page.locator("html")).to_have_attribute("dir", direction)
            found[name] = violations(page)
            page.screenshot(path=shot(tmp_path, f"{name}-ar.png"), full_page=True)
        arabic = page.locator('div[lang="ar"][dir="rtl"]')  # on the unknown link's page
        expect(arabic).to_have_count(1)
        browser.close()
    assert found == {name: {} for name in pages}


def unsubscribe_link(mail: Path, base: str) -> str:
    """The web link of the List-Unsubscribe header of Omar's last message."""
    header = str(read_maildir(mail)[OMAR][-1]["List-Unsubscribe"])
    [web] = [e.strip().strip("<>") for e in header.split(",") if base in e]
    return web
