"""Erasure, checked as an attacker would: dump every table and column of the store (and, on
SQLite, read the database files byte by byte) and search for the person.

The person answered on their page, was named in a stage's audience and on the steering list,
got mail that the transport acknowledged with their address, and their words went into the
reflection report that was attached to the coordinator's email. After `participants erase`
none of it may be found; everybody else's data stays.
"""

from __future__ import annotations

import html
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import escape
from sqlalchemy import Engine, MetaData, make_url, select
from typer.testing import CliRunner

from flows.cli import app
from flows.cycles.resequence import add_stage
from flows.reporting import indicators as ind
from flows.web.app import create_app
from tests.conftest import EXAMPLE_CSV, launch_learning_cycle, read_maildir, tick
from tests.flows.test_web import Pages

TZ = ZoneInfo("Europe/Stockholm")
START = datetime.now(TZ).replace(second=0, microsecond=0) + timedelta(days=2)
WORKSHOP = START + timedelta(days=21)
SARA, NAME = "sara.ahmadi@goteborg.example", "Sara Ahmadi"
ANNA = "anna.lindqvist@forsakringskassan.example"
HER_WORDS = f"{NAME} här: vi träffas & pratar – det är 'mycket bättre' nu, tack vare <Lotta>"
HER_FRAGMENTS = ("mycket bättre", "tack vare")  # what is left if her name were taken out first
ANNAS_WORDS = "Vi ringer varandra innan vi skickar vidare."


def dump(engine: Engine) -> str:
    """Every value of every column of every table, as text (bytes read both ways)."""
    meta = MetaData()
    meta.reflect(engine)
    out: list[str] = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        out += [raw.decode("utf-8", "replace"), raw.decode("latin-1")]
                    else:
                        out.append(str(value))
    return "\n".join(out)


def forms(text: str) -> set[str]:
    """The ways a text can be stored: as given, collapsed, HTML-escaped (both escapers)."""
    found = set()
    for t in (text, " ".join(text.split())):
        found |= {t, html.escape(t), html.escape(t, quote=False), str(escape(t))}
    return found


def answer_on_page(settings: Any, engine: Engine, who: str, words: str, scale: int) -> None:
    text = (
        read_maildir(Path(settings.mail_dir))[who][-1]
        .get_body(preferencelist=("plain",))
        .get_content()
    )  # type: ignore[union-attr]
    [path] = set(re.findall(r"http://127\.0\.0\.1:8000(/a/[A-Za-z0-9_-]+)", text))
    pages = Pages(create_app(settings, engine))
    sent = pages.post(path, data={"q_scale-now": str(scale), "q_what-is-better": words})
    assert sent.status_code == 303


def test_after_erasure_a_dump_of_the_store_holds_nothing_of_the_person(network, settings):
    cycle_id = launch_learning_cycle(
        network, settings, START, WORKSHOP, location=f"Hos {NAME}s team", steering=[SARA.upper()]
    )
    add_stage(
        network,
        settings,
        cycle_id=cycle_id,
        kind="email",
        key="note-to-sara",
        template="progress-note",
        audience=f"email={SARA}",
        after="workshop",
        offset="1d",
        reason=f"{NAME} asked for the notes, and so did KARIN STRÖM",
    )
    tick(START)
    tick(WORKSHOP + timedelta(days=1))
    tick(WORKSHOP + timedelta(days=7))
    answer_on_page(settings, network, SARA, HER_WORDS, 7)
    answer_on_page(settings, network, ANNA, ANNAS_WORDS, 5)
    answer_on_page(settings, network, "per.holm@vgregion.example", "", 6)
    tick(WORKSHOP + timedelta(days=14))  # the reflection, with the report attached
    # Her address bounced (the notice quotes it, the file is named for it), and Karin's
    # out-of-office reply came in: what the mailbox kept of them goes too.
    from tests.flows.test_mailbox import sent_to, shaped

    mailbox = Path(settings.mail_dir).parent / "mailbox"
    mailbox.mkdir()
    (mailbox / f"{SARA}.eml").write_bytes(shaped("postfix-bounce.eml", sent_to(network, SARA)))
    karin = sent_to(network, "karin.strom@vgregion.example")
    (mailbox / "karin.strom@vgregion.example.eml").write_bytes(
        shaped("exchange-out-of-office.eml", karin)
    )
    read = CliRunner().invoke(app, ["inbox", "import", str(mailbox)])
    assert "1 bounce, 1 auto-reply" in read.output, read.output

    before = dump(network)
    assert SARA in before.lower() and NAME in before
    assert any(f in before for f in forms(HER_WORDS))  # her answer, and the report quoting it
    numbers = [(r.organisation, r.role, r.indicator, r.value) for r in ind.compute(network).rows()]

    # A server that keeps the database open (as `samverkan serve` does) keeps its WAL alive.
    db = Path(str(make_url(settings.database_url).database))
    server = sqlite3.connect(db) if settings.database_url.startswith("sqlite") else None
    if server is not None:
        server.execute("SELECT count(*) FROM participant").fetchall()
    result = CliRunner().invoke(
        app, ["participants", "erase", SARA.upper(), "--yes", "--reason", f"{NAME} phoned"]
    )
    assert result.exit_code == 0, result.output

    after = dump(network)
    assert SARA not in after.lower()
    assert NAME.lower() not in after.lower()
    for form in forms(HER_WORDS):
        assert form not in after, form
    for fragment in HER_FRAGMENTS:
        assert fragment not in after, fragment
    assert "Hos [erased]s team" in after  # the workshop's place, in everyone's invite
    # A name is found in any capitals, also beyond ASCII.
    assert "karin ström" in after.lower()
    erased = CliRunner().invoke(
        app, ["participants", "erase", "karin.strom@vgregion.example"], input="n\n"
    )
    assert erased.exit_code == 2  # it asks first; "no" erases nothing
    assert "karin ström" in dump(network).lower()
    erased = CliRunner().invoke(
        app, ["participants", "erase", "karin.strom@vgregion.example", "--yes"]
    )
    assert erased.exit_code == 0, erased.output
    after = dump(network)
    assert "karin ström" not in after.lower() and "karin.strom@" not in after.lower()
    # Everybody else is still there, and so are the anonymous numbers.
    assert ANNA in after and any(f in after for f in forms(ANNAS_WORDS))
    assert "Anna Lindqvist" in after
    assert [
        (r.organisation, r.role, r.indicator, r.value) for r in ind.compute(network).rows()
    ] == numbers

    if settings.database_url.startswith("sqlite"):
        files = sorted(db.parent.glob(db.name + "*"))  # the database, its WAL and shared memory
        assert db in files
        for f in files:
            raw = f.read_bytes()
            for secret in (SARA, NAME, HER_WORDS, "Karin Ström", "karin.strom@"):
                assert secret.encode() not in raw, f"{secret!r} is still in {f.name}"
                assert secret.upper().encode() not in raw, f"{secret!r} is still in {f.name}"
        assert server is not None
        server.close()


def test_the_cli_says_what_it_erased_and_refuses_an_unknown_person(settings) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["participants", "import", str(EXAMPLE_CSV)]).exit_code == 0
    done = runner.invoke(app, ["participants", "erase", SARA, "--yes"])
    assert done.exit_code == 0 and done.output.startswith(f"erased {SARA}:")
    again = runner.invoke(app, ["participants", "erase", SARA, "--yes"])
    assert again.exit_code == 2
    assert again.output.strip() == f"error: no participant with email {SARA}"


def test_a_name_is_erased_as_a_whole_word_and_in_the_genitive() -> None:
    from flows.people.privacy import _Scrub

    scrub = _Scrub("ann@x.example", "Ann", "erased-1@invalid")
    assert scrub("Planning with Ann, ANN's team and Anns kollegor (ann@x.example)") == (
        "Planning with [erased], [erased]'s team and [erased]s kollegor (erased-1@invalid)"
    )
