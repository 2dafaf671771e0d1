"""The workspace's overview, templates, launch, reports and indicators pages, through the
in-process client against the real store (flows/web/workspace/overview.py, catalogue.py,
reports.py)."""

from __future__ import annotations

import html
import json
import re
import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from flows.settings import REPO_TEMPLATES, Settings
from store import queries
from store.models import Cycle, Message, Response
from tests.conftest import launch_learning_cycle, tick
from tests.e2e.test_cli import invoke
from tests.workspace import COORDINATOR, SIGNER, VIEWER, Client

START = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)  # 09:00 in Stockholm
WORKSHOP = datetime(2027, 2, 10, 8, 0, tzinfo=UTC)


class Tables(HTMLParser):
    """Every table of a page by its caption, as rows of cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._caption: str | None = None
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._in_caption = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows, self._caption = [], ""
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None and self._rows is not None:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table" and self._rows is not None:
            self.tables[self._caption or ""] = self._rows
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self._caption = (self._caption or "") + data
        elif self._cell is not None:
            self._cell.append(data)


def links(text: str) -> dict[str, str]:
    """Each link's text (tags and spacing removed) -> its address."""
    found = {}
    for href, inner in re.findall(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', text, re.DOTALL):
        found[" ".join(re.sub(r"<[^>]+>", "", inner).split())] = html.unescape(href)
    return found


def alerts(text: str) -> dict[str, str]:
    """Field error messages by the field they are for (err-<field> ids)."""
    found = re.findall(r'<p class="field-error" id="err-([^"]+)" role="alert">(.*?)</p>', text)
    return {k: html.unescape(v) for k, v in found}


def value_of(text: str, name: str) -> str:
    tag = re.search(rf'<(?:input|textarea)[^>]*name="{re.escape(name)}"[^>]*>', text)
    assert tag, name
    if tag.group(0).startswith("<textarea"):
        body = re.search(rf'name="{re.escape(name)}"[^>]*>(.*?)</textarea>', text, re.DOTALL)
        assert body
        return html.unescape(body.group(1))
    found = re.search(r'value="([^"]*)"', tag.group(0))
    return html.unescape(found.group(1)) if found else ""


def same_report(a: str, b: str) -> bool:
    def plain(text: str) -> str:
        return re.sub(r"-[mp][0-9a-f]{10}\b", "-id", text)

    return plain(a) == plain(b)


def cycle_count(engine) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return len(queries.list_cycles(s))


@pytest.fixture
def waiting_cycle(network, settings):  # type: ignore[no-untyped-def]
    """A launched learning cycle whose invitation drafts wait for approval (the tick at its
    start wrote them), with one of them made a failed message."""
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, approve=False)
    tick(START)
    with Session(network) as s:
        first = s.exec(select(Message).where(Message.cycle_id == cycle_id)).first()
        assert first is not None
        s.exec(
            update(Message)
            .where(Message.id == first.id)  # type: ignore[arg-type]
            .values(status="failed", last_error="550 5.1.1 No such user")
        )
        s.commit()
    return cycle_id


# Overview ----------------------------------------------------------------------------------


def test_overview_counts_in_words_and_links_to_the_rows(web, waiting_cycle) -> None:
    page = web(COORDINATOR).get("/workspace/")
    assert page.status_code == 200
    row = Tables(page.text).tables["Every cycle, what is due next and what waits for you"][1]
    cycle, status, due, waiting, answers = row
    assert cycle.startswith("Vår 2027") and status == "Running"
    assert "1 stage waits for your approval: drafts of invitation" in waiting
    assert "1 message failed" in waiting and "uncertain" not in waiting
    assert answers == "No follow-up sent yet"
    # The next stage to run is the workshop's invite (after the invitation), due at 09:00
    # in the cycle's zone, not at 08:00 UTC.
    assert due == "workshop at 2027-01-20 09:00 (Europe/Stockholm)"
    got = links(page.text)
    base = f"/workspace/cycles/{waiting_cycle}"
    assert got["drafts of invitation"] == f"{base}/stages/invitation/drafts"
    assert got["1 message failed"] == f"{base}/outbox?status=failed"
    assert got["Vår 2027"] == base
    assert "1 cycle has something waiting for you" in page.text


def test_overview_tells_coverage_and_what_needs_approval_ahead(web, network, settings) -> None:
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, approve=False)
    with Session(network) as s:
        members = queries.members(s, cycle_id=cycle_id)
        stage = queries.get_stage(s, cycle_id=cycle_id, key="followup")
        for person, _ in members[:10]:
            s.add(
                Message(
                    cycle_id=cycle_id,
                    stage_id=stage.id,  # type: ignore[arg-type]
                    participant_id=person.id,
                    to_email=person.email,
                    to_key=person.email_key,
                    to_name=person.name,
                    category="followup",
                    subject="q",
                    text="q",
                    html="q",
                    status="sent",
                )
            )
        for person, _ in members[:4]:
            s.add(
                Response(
                    cycle_id=cycle_id,
                    stage_id=stage.id,  # type: ignore[arg-type]
                    participant_id=person.id,
                    question_id="scale-now",
                    scale_value=5,
                )
            )
        s.commit()
    page = web(COORDINATOR).get("/workspace/")
    row = Tables(page.text).tables["Every cycle, what is due next and what waits for you"][1]
    assert row[2] == (
        "invitation at 2027-01-20 09:00 (Europe/Stockholm) Needs your approval before it is sent"
    )
    assert row[3] == "Nothing"
    assert row[4] == "4 of 10 asked have answered (40%)"
    assert links(page.text)["4 of 10 asked have answered"] == (
        f"/workspace/cycles/{cycle_id}/indicators"
    )
    assert "nothing waits for you" in page.text


def test_overview_is_for_the_coordinator(web) -> None:
    for who, home in ((VIEWER, "/workspace/reports"), (SIGNER, "/workspace/drafts")):
        page = web(who).get("/workspace/")
        assert page.status_code == 303
        assert page.headers["location"] == home
    anonymous = web().get("/workspace/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/workspace/login")


# Templates ---------------------------------------------------------------------------------


def test_templates_list_and_detail(web) -> None:
    client = web(COORDINATOR)
    listing = client.get("/workspace/templates")
    assert listing.status_code == 200
    rows = Tables(listing.text).tables["Templates in the templates folder"]
    assert rows[1:] == [
        [
            "annual-survey",
            "Annual survey",
            "survey → survey-reminder → last-reminder → report",
        ],
        [
            "learning-cycle",
            "Learning cycle",
            "invitation → workshop → workshop-reminder → followup → followup-reminder → reflection",
        ],
    ]
    assert links(listing.text)["learning-cycle"] == "/workspace/templates/learning-cycle"

    detail = client.get("/workspace/templates/learning-cycle")
    assert detail.status_code == 200
    assert (
        "Valid: learning-cycle: valid: 6 stages, 39 emails (sv, en, ar, fi, sv-x-easy) rendered"
        in detail.text
    )
    tables = Tables(detail.text).tables
    stages = {r[0]: r for r in tables["The stages of learning-cycle, in plan order"][1:]}
    assert list(stages) == [
        "invitation",
        "workshop",
        "workshop-reminder",
        "followup",
        "followup-reminder",
        "reflection",
    ]
    assert stages["invitation"][2:4] == ["When the cycle starts", "You approve its drafts first"]
    assert stages["workshop-reminder"][2:4] == ["2d before workshop", "Sent without approval"]
    assert "unless accepted" in stages["workshop-reminder"][4]
    variables = {r[0]: r for r in tables["What a launch asks for"][1:]}
    assert variables["workshop_at"][1] == "date and time"
    assert variables["workshop_at"][3] == "2027-02-10T09:00"
    assert variables["location"][1:] == [
        "text",
        "Where the workshop is held (an address or a video link).",
        "Stadshuset, Göteborg",
    ]
    questions = {r[0]: r for r in tables["What the follow-ups ask"][1:]}
    assert list(questions) == ["scale-now", "what-is-better", "difference-made", "one-step-up"]
    assert questions["scale-now"][2] == "A number from 0 to 10"
    got = links(detail.text)
    assert got["Launch a cycle from this template"] == "/workspace/launch/learning-cycle"
    assert client.get("/workspace/templates/no-such").status_code == 404
    # A folder of the templates folder that is no template (the question library).
    assert client.get("/workspace/templates/questions").status_code == 404
    assert client.get("/workspace/launch/questions").status_code == 404


def broken_app(tmp_path: Path, accounts, monkeypatch) -> Client:  # type: ignore[no-untyped-def]
    """A workspace whose templates folder holds a copy of the bundled one with an error."""
    from flows.web.app import create_app

    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    shutil.copytree(root / "learning-cycle", root / "broken-cycle")
    yaml = root / "broken-cycle" / "process.yaml"
    text = yaml.read_text().replace("name: learning-cycle", "name: broken-cycle")
    yaml.write_text(text.replace("    after: followup\n", "    after: nothing\n"))
    email = root / "learning-cycle" / "emails" / "invitation.sv.md.j2"
    email.write_text(email.read_text().replace("{{ cycle.name }}", "{{ cycle.title }}", 1))
    monkeypatch.setenv("SAMVERKAN_TEMPLATES_DIR", str(root))
    client = Client(create_app(Settings(), accounts))
    assert client.login(COORDINATOR).status_code == 303
    return client


def test_a_broken_template_shows_its_error(tmp_path, accounts, monkeypatch) -> None:
    client = broken_app(tmp_path, accounts, monkeypatch)
    listing = client.get("/workspace/templates")
    rows = {r[0]: r for r in Tables(listing.text).tables["Templates in the templates folder"][1:]}
    assert "Broken:" in rows["broken-cycle"][1]
    assert "anchored on unknown stage 'nothing'" in rows["broken-cycle"][1]
    # The schema is fine but an email fails when rendered: only validation finds it.
    assert rows["learning-cycle"][1] == "Learning cycle"

    broken = client.get("/workspace/templates/broken-cycle")
    assert "This template has an error" in broken.text
    assert "anchored on unknown stage &#39;nothing&#39;" in broken.text
    assert "Launch a cycle from this template" not in broken.text
    assert client.get("/workspace/launch/broken-cycle").status_code == 409

    rendering = client.get("/workspace/templates/learning-cycle")
    assert "This template has an error" in rendering.text
    assert "has no attribute &#39;title&#39;" in rendering.text
    assert "Launch a cycle from this template" not in rendering.text


# Launch ------------------------------------------------------------------------------------

GOOD = {
    "name": "Höst 2027",
    "start": "2027-09-01T09:00",
    "timezone": "Europe/Stockholm",
    "var-workshop_at": "2027-09-20T13:00",
    "var-location": "Stadshuset, Göteborg",
    "audience": "",
    "steering": "styr@region.example\nledning@kommun.example",
}


def test_launch_form_is_built_from_the_variables(web) -> None:
    page = web(COORDINATOR).get("/workspace/launch/learning-cycle")
    assert page.status_code == 200
    text = page.text
    assert '<label for="var-workshop_at">Workshop at</label>' in text
    assert re.search(r'<input type="datetime-local" id="var-workshop_at"', text)
    assert re.search(r'<input type="text" id="var-location"[^>]*placeholder="Stadshuset', text)
    assert "Where the workshop is held" in text
    assert "<option selected>Europe/Stockholm</option>" in text
    for name in ("name", "start", "timezone", "audience", "steering"):
        assert f'<label for="{name}">' in text


def test_a_missing_or_bad_variable_is_shown_beside_its_field(web, network) -> None:
    client = web(COORDINATOR)
    typed = {**GOOD, "var-location": "", "name": "Höst <b>2027</b>"}
    page = client.submit("/workspace/launch/learning-cycle", data=typed)
    assert page.status_code == 422
    assert alerts(page.text) == {"var-location": "Fill in location."}
    assert 'aria-describedby="help-var-location err-var-location" aria-invalid="true"' in page.text
    # What was typed is kept (and escaped).
    assert value_of(page.text, "name") == "Höst <b>2027</b>"
    assert "Höst &lt;b&gt;2027&lt;/b&gt;" in page.text
    assert value_of(page.text, "var-workshop_at") == "2027-09-20T13:00"
    assert value_of(page.text, "steering") == GOOD["steering"]
    assert cycle_count(network) == 0

    bad = client.submit(
        "/workspace/launch/learning-cycle", data={**GOOD, "var-workshop_at": "next week"}
    )
    assert bad.status_code == 422
    message = alerts(bad.text)["var-workshop_at"]
    assert message.startswith("Invalid workshop at 'next week': use ISO 8601")
    # The workshop before the start: said beside the workshop's time.
    early = client.submit(
        "/workspace/launch/learning-cycle", data={**GOOD, "var-workshop_at": "2027-08-01T09:00"}
    )
    assert "before the cycle starts" in alerts(early.text)["var-workshop_at"]
    for given, where, words in (
        ({"name": ""}, "name", "Name is empty"),
        ({"start": "soon"}, "start", "Invalid start 'soon'"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone 'Mars/Olympus'"),
        ({"audience": "role=astronaut"}, "audience", "unknown role 'astronaut'"),
        ({"steering": "not an address"}, "steering", "Steering group address: 'not an"),
    ):
        got = client.submit("/workspace/launch/learning-cycle", data={**GOOD, **given})
        assert got.status_code == 422, given
        assert words in alerts(got.text).get(where, ""), (given, alerts(got.text))
    assert cycle_count(network) == 0


def test_an_error_no_field_can_be_told_is_at_the_top(web, network) -> None:
    page = web(COORDINATOR).submit(
        "/workspace/launch/learning-cycle", data={**GOOD, "audience": "org=Nowhere"}
    )
    # An audience that matches no one: the audience field.
    assert "match the audience" in alerts(page.text)["audience"]
    assert cycle_count(network) == 0


def test_with_no_network_the_error_is_above_the_form(web) -> None:
    page = web(COORDINATOR).submit("/workspace/launch/learning-cycle", data=GOOD)
    assert page.status_code == 422
    assert alerts(page.text) == {}
    assert re.search(
        r'<div class="error" role="alert"><p>Nothing was launched: No participants to invite'
        r": add them to the network first</p>",
        page.text,
    )


def test_a_good_launch_creates_the_cycle_and_redirects(web, network) -> None:
    page = web(COORDINATOR).submit("/workspace/launch/learning-cycle", data=GOOD)
    assert page.status_code == 303, page.text
    with Session(network) as s:
        (cycle,) = queries.list_cycles(s)
        entries = queries.audit_log(s, cycle_id=cycle.id)  # type: ignore[arg-type]
        workshop = queries.get_stage(s, cycle_id=cycle.id, key="workshop")  # type: ignore[arg-type]
    assert page.headers["location"] == f"/workspace/cycles/{cycle.id}"
    assert (cycle.name, cycle.timezone) == ("Höst 2027", "Europe/Stockholm")
    assert cycle.status == "running"
    assert cycle.start_at == datetime(2027, 9, 1, 7, 0, tzinfo=UTC)
    assert cycle.steering == ["styr@region.example", "ledning@kommun.example"]
    assert workshop.config["location"] == "Stadshuset, Göteborg"
    assert datetime.fromisoformat(workshop.config["starts_at"]) == datetime(
        2027, 9, 20, 11, 0, tzinfo=UTC
    )
    assert [(e.action, e.actor) for e in entries] == [("cycle.launch", COORDINATOR)]
    assert "13 participants" in entries[0].detail


def test_launch_with_an_audience_takes_only_those(web, network) -> None:
    page = web(COORDINATOR).submit(
        "/workspace/launch/learning-cycle", data={**GOOD, "audience": "role=politician"}
    )
    assert page.status_code == 303
    with Session(network) as s:
        (cycle,) = queries.list_cycles(s)
        people = queries.members(s, cycle_id=cycle.id)  # type: ignore[arg-type]
    assert people and {str(p.role) for p, _ in people} == {"politician"}


def test_a_language_without_emails_asks_for_the_fallback_on_the_form(
    web, network, tmp_path
) -> None:
    from tests.flows.test_languages import HODAN, add_people

    add_people(network, tmp_path, HODAN)
    client = web(COORDINATOR)
    form = client.get("/workspace/launch/learning-cycle").text
    assert '<option value="fi">Finnish (fi)</option>' in form
    refused = client.submit("/workspace/launch/learning-cycle", data=GOOD)
    assert refused.status_code == 422
    assert alerts(refused.text)["fallback_language"].startswith(
        "Template learning-cycle has no emails in the language of some participants "
        "(1 read so): choose what they get with the fallback language"
    )
    done = client.submit(
        "/workspace/launch/learning-cycle", data={**GOOD, "fallback_language": "en"}
    )
    assert done.status_code == 303, done.text
    with Session(network) as s:
        (cycle,) = queries.list_cycles(s)
        (entry,) = queries.audit_log(s, cycle_id=cycle.id)  # type: ignore[arg-type]
    assert cycle.fallback_language == "en"
    assert entry.detail.endswith(
        "; 1 participant reads so: template learning-cycle has no so emails; they get en "
        "(--fallback-language)"
    )


def test_launch_without_the_csrf_token_changes_nothing(web, network) -> None:
    client = web(COORDINATOR)
    refused = client.post("/workspace/launch/learning-cycle", data=GOOD)
    assert refused.status_code == 403
    forged = client.post("/workspace/launch/learning-cycle", data={**GOOD, "csrf": "x" * 43})
    assert forged.status_code == 403
    assert cycle_count(network) == 0


# Reports and indicators --------------------------------------------------------------------


def test_reports_list_links_each_cycle(web, two_cycles) -> None:
    c1, c2 = two_cycles
    page = web(VIEWER).get("/workspace/reports")
    assert page.status_code == 200
    got = links(page.text)
    assert got["Report of Cycle 1"] == f"/workspace/cycles/{c1}/report"
    assert got["Indicators of Cycle 2"] == f"/workspace/cycles/{c2}/indicators"
    rows = Tables(page.text).tables["Cycles"]
    assert rows[1][:2] == ["Cycle 1", "2027-01-01 01:00"]


def test_report_page_embeds_the_report_and_offers_downloads(
    web, engine, settings, two_cycles
) -> None:
    from flows.reporting.report import build_report

    _, c2 = two_cycles
    with Session(engine) as s:
        s.add(
            Response(
                cycle_id=c2,
                stage_id=2,
                participant_id=1,
                question_id="what-works",
                text="<script>alert(1)</script> Att vi ses.",
            )
        )
        s.commit()
    client = web(VIEWER)
    page = client.get(f"/workspace/cycles/{c2}/report")
    assert page.status_code == 200
    text = page.text
    assert text.count("<html") == 1 and text.count("<main") == 1 and text.count("<h1") == 1
    assert '<article class="report" lang="sv">' in text
    assert "<h1>Reflektion: Cycle 2</h1>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Att vi ses." in text
    assert "<script>" not in text
    got = links(text)
    download = client.get(got["as an HTML page"])
    assert download.status_code == 200
    assert download.headers["content-disposition"] == (
        f'attachment; filename="reflection-cycle-{c2}.html"'
    )
    # The same report (charts name their clip paths afresh each time they are drawn).
    assert same_report(download.text, build_report(engine, settings, c2, "html"))
    markdown = client.get(got["as Markdown"])
    assert markdown.headers["content-disposition"].startswith("attachment;")
    assert markdown.text == invoke("report", str(c2), "--format", "md").stdout
    assert client.get("/workspace/cycles/999/report").status_code == 404
    assert client.get(f"/workspace/cycles/{c2}/report.pdf").status_code == 404


def test_indicators_page_never_shows_a_hidden_value(web, two_cycles) -> None:
    c1, _ = two_cycles
    page = web(VIEWER).get(f"/workspace/cycles/{c1}/indicators")
    assert page.status_code == 200
    tables = Tables(page.text).tables
    head = tables["Everyone: Cycle 1"][0]
    assert head == [
        "Group",
        "Asked",
        "Answered",
        "Response rate",
        "Mean (0–10)",
        "Median",
        "Change",
    ]
    assert tables["Everyone: Cycle 1"][1][:5] == ["Everyone", "8", "6", "75%", "5.8 (n = 6)"]
    cells = {(r[0], r[1]): r[2:] for r in tables["By organisation and role: Cycle 1"][1:]}
    # One manager in A, one politician in B: nothing of them, not even how many.
    assert cells[("A", "Manager")] == ["not shown"] * 5 + ["–"]
    assert cells[("B", "Elected member")][:3] == ["not shown"] * 3
    # B's three service users would give the politician away from B's total: hidden too.
    assert cells[("B", "Participant")][:3] == ["not shown"] * 3
    orgs = {r[0]: r[1:] for r in tables["By organisation: Cycle 1"][1:]}
    assert orgs["B"][0] == "4"
    assert "Groups fewer than 3 people were asked are" in page.text
    # Every figure the export hides is "not shown" on the page, and every one it shows is there.
    exported = json.loads(invoke("indicators", "--cycle", str(c1), "--format", "json").stdout)
    hidden = [r for r in exported if r["suppressed"]]
    assert hidden and all(r["value"] is None and r["n"] is None for r in hidden)
    assert page.text.count("not shown") >= len(hidden)


def test_indicator_downloads_are_the_cli_export(web, two_cycles) -> None:
    c1, c2 = two_cycles
    client = web(VIEWER)
    for fmt, media in (("csv", "text/csv"), ("json", "application/json")):
        got = client.get(f"/workspace/cycles/{c2}/indicators.{fmt}")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith(media)
        assert got.headers["content-disposition"] == (
            f'attachment; filename="indicators-cycle-{c2}.{fmt}"'
        )
        cli = invoke("indicators", "--cycle", str(c2), "--format", fmt)
        assert cli.exit_code == 0
        assert got.content == cli.stdout_bytes
    assert client.get("/workspace/cycles/999/indicators.csv").status_code == 404
    assert client.get(f"/workspace/cycles/{c1}/indicators.xml").status_code == 404
    assert client.get("/workspace/cycles/999/indicators").status_code == 404


# Roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", [VIEWER, SIGNER])
def test_other_roles_read_reports_but_not_templates_or_launch(web, two_cycles, who) -> None:
    c1, _ = two_cycles
    client = web(who)
    for path in ("/workspace/reports", f"/workspace/cycles/{c1}/indicators"):
        assert client.get(path).status_code == 200, path
    for path in (
        "/workspace/templates",
        "/workspace/templates/learning-cycle",
        "/workspace/launch/learning-cycle",
    ):
        assert client.get(path).status_code == 403, path
    shown = client.get("/workspace/reports")
    from tests.workspace import csrf_of

    posted = client.post(
        "/workspace/launch/learning-cycle", data={**GOOD, "csrf": csrf_of(shown.text)}
    )
    assert posted.status_code == 403
    assert 'href="/workspace/templates"' not in shown.text


def test_anonymous_is_sent_to_login(web, two_cycles) -> None:
    c1, _ = two_cycles
    client = web()
    for path in (
        "/workspace/reports",
        f"/workspace/cycles/{c1}/report",
        f"/workspace/cycles/{c1}/indicators",
        f"/workspace/cycles/{c1}/indicators.csv",
        "/workspace/templates",
        "/workspace/launch/learning-cycle",
    ):
        got = client.get(path)
        assert got.status_code == 303, path
        assert got.headers["location"].startswith("/workspace/login?back="), path
    posted = client.post("/workspace/launch/learning-cycle", data=GOOD)
    assert posted.status_code == 303


def test_a_hostile_cycle_name_renders_as_text(web, engine, two_cycles) -> None:
    c1, _ = two_cycles
    with Session(engine) as s:
        cycle = s.get(Cycle, c1)
        assert cycle is not None
        cycle.name = "<script>alert(1)</script>"
        s.add(cycle)
        s.commit()
    client = web(COORDINATOR)
    for path in ("/workspace/", "/workspace/reports", f"/workspace/cycles/{c1}/indicators"):
        text = client.get(path).text
        assert "<script>" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
