"""The HTML reflection report in a real headless Chromium, checked by axe-core."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.reporting.report import build_report
from tests.conftest import PAGES_ON_SQLITE
from tests.e2e.test_browser import CHROMIUM, FLAGS, NEEDS_CHROMIUM
from tests.flows.test_report import add_workshop

# Where the screenshots go when SAMVERKAN_SCREENSHOTS names a folder (read before the tests
# clear the environment).
SHOTS = os.environ.get("SAMVERKAN_SCREENSHOTS")

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]


@PAGES_ON_SQLITE
@pytest.mark.parametrize("language", ["sv", "en", "ar"])
def test_the_report_passes_axe_in_a_real_browser(
    engine, settings, two_cycles, tmp_path: Path, language: str
) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    _, c2 = two_cycles
    add_workshop(engine, c2)
    chosen = settings.model_copy(update={"coordinator_language": language})
    report = tmp_path / "reflection.html"
    report.write_text(build_report(engine, chosen, c2, "html"), encoding="utf-8")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        page.goto(report.as_uri())
        expect(page.get_by_role("main")).to_have_count(1)
        expect(page.get_by_role("heading", level=1)).to_have_text(
            {"sv": "Reflektion: Cycle 2", "en": "Reflection: Cycle 2", "ar": "وقفة تأمّل: Cycle 2"}[
                language
            ]
        )
        figures = page.get_by_role("img")
        expect(figures).to_have_count(2)  # the distribution and the trend, each one image
        results = Axe().run(page, options={"resultTypes": ["violations"]})
        shots = Path(SHOTS or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / f"report-{language}.png"), full_page=True)
        browser.close()
    violations = {
        v["id"]: [n["target"] for n in v["nodes"]] for v in results.response["violations"]
    }
    assert violations == {}, results.generate_report()


def test_the_combined_view_passes_axe_in_a_real_browser(tmp_path: Path) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    from flows.reporting.combine import combine
    from flows.reporting.combine_report import to_html
    from tests.flows.test_combine import two_years

    combiner, rows = combine(two_years(tmp_path), min_group=3)
    page_file = tmp_path / "combined.html"
    page_file.write_text(to_html(combiner, rows, min_group=3), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        expect(page.get_by_role("heading", level=1)).to_have_text("Combined indicators")
        # The scale question's mean per year, per respondent group shown: one image.
        chart = page.get_by_role("img")
        expect(chart).to_have_count(1)
        assert "service-users: 2027 5.75, 2028 6.667" in (chart.get_attribute("aria-label") or "")
        results = Axe().run(page, options={"resultTypes": ["violations"]})
        page.screenshot(path=str(tmp_path / "combined.png"), full_page=True)
        browser.close()
    assert requests == [page_file.as_uri()]  # nothing fetched from anywhere else
    violations = {
        v["id"]: [n["target"] for n in v["nodes"]] for v in results.response["violations"]
    }
    assert violations == {}, results.generate_report()
