"""Input too large to handle ends in one line and exit status 2, never an internal error or a
machine out of memory: numbers, durations and dates on the command line, ids beyond what a
database integer holds, and templates that try to build huge values."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.settings import REPO_TEMPLATES
from tests.conftest import EXAMPLE_CSV
from tests.e2e.test_cli import LAUNCH

runner = CliRunner()
HUGE = "99999999999999999999999"  # beyond 64 bits
BIG = str(2**31)  # beyond PostgreSQL's integer


def one_error_line(args: list[str], starts: str) -> str:
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
    )
    assert result.exit_code == 2, (args, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, (args, result.output)
    assert lines[0].startswith(starts), (args, lines[0])
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


@pytest.fixture
def cycle(settings) -> int:  # type: ignore[no-untyped-def]
    assert runner.invoke(app, ["participants", "import", str(EXAMPLE_CSV)]).exit_code == 0
    launched = runner.invoke(app, LAUNCH)
    assert launched.exit_code == 0, launched.output
    return int(launched.output.strip())


# Validated before any store is opened, or (templates validate) in a throwaway SQLite store of
# its own whatever the configured database: the same on both, so read on SQLite only.
NO_STORE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    "command",
    [
        ["cycle", "show", "{id}"],
        ["drafts", "{id}", "invitation"],
        ["approve", "{id}", "invitation"],
        ["audit", "{id}"],
        ["outbox", "{id}"],
        ["outbox", "resend", "{id}", "--uncertain"],
        ["stage", "skip", "{id}", "workshop-reminder"],
        ["stage", "reschedule", "{id}", "workshop", "--at", "2027-02-17T09:00"],
        ["cycle", "pause", "{id}"],
        ["cycle", "add-participants", "{id}", "--email", "lars.ek@goteborg.example"],
        ["report", "{id}"],
        ["indicators", "--cycle", "{id}"],
    ],
    ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else c,
)
def test_an_id_no_database_can_hold_is_no_cycle(cycle: int, command: list[str]) -> None:
    for cycle_id in (HUGE, BIG, str(2**63)):  # one store for the three: none of them writes
        args = [cycle_id if a == "{id}" else a for a in command]
        one_error_line(args, f"error: no cycle with id {cycle_id}")


@pytest.mark.parametrize("text", ["²", "1²", "٣"])
def test_an_outbox_id_must_be_written_in_digits(cycle: int, text: str) -> None:
    one_error_line(["outbox", text], "error: usage: samverkan outbox ID")


ADD = ["stage", "add", "1", "--kind", "email", "--key", "later", "--template", "progress-note"]
MEETING = ["stage", "add", "1", "--kind", "meeting", "--key", "second", "--after", "workshop"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*ADD, "--after", "workshop", "--offset", "99999999999d"],
            "error: duration '99999999999d' is too long: at most 3650 days",
        ),
        (
            [*ADD, "--after", "workshop", "--offset", "3651d"],
            "error: duration '3651d' is too long: at most 3650 days",
        ),
        (
            [*MEETING, "--starts", "2027-03-10T13:00", "--duration", "99999999999999h"],
            "error: duration '99999999999999h' is too long: at most 3650 days",
        ),
        (
            [*ADD, "--at", "9999-12-31T09:00"],
            "error: invalid --at '9999-12-31T09:00': the year must be between 1970 and 2199",
        ),
        (
            [*MEETING, "--starts", "9999-12-31T13:00"],
            "error: invalid --starts '9999-12-31T13:00': the year must be between",
        ),
        (
            ["stage", "reschedule", "1", "workshop", "--at", "9999-12-31T09:00"],
            "error: invalid --at '9999-12-31T09:00': the year must be between",
        ),
        (
            ["stage", "reschedule", "1", "workshop", "--at", "0001-01-01T09:00"],
            "error: invalid --at '0001-01-01T09:00': the year must be between",
        ),
        (["tick", "--now", "9999-12-31T23:59"], "error: invalid --now '9999-12-31T23:59'"),
    ],
)
def test_durations_and_dates_out_of_range(cycle: int, args: list[str], message: str) -> None:
    one_error_line(args, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*LAUNCH[:6], "9999-01-20T09:00", *LAUNCH[7:]],
            "error: invalid --start '9999-01-20T09:00': the year must be between",
        ),
        (
            [*LAUNCH[:8], "workshop_at=9999-12-31T09:00", *LAUNCH[9:]],
            "error: invalid --var workshop_at '9999-12-31T09:00': the year must be between",
        ),
    ],
)
def test_a_launch_far_in_the_future_is_refused(settings, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    runner.invoke(app, ["participants", "import", str(EXAMPLE_CSV)])
    one_error_line(args, message)
    assert runner.invoke(app, ["cycle", "list"]).output.startswith("no cycles yet")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--every", "nan"], "error: --every nan: use 1 to 86400 seconds"),
        (["worker", "--every", "inf"], "error: --every inf: use 1 to 86400 seconds"),
        (["worker", "--every", "1e400"], "error: --every inf: use 1 to 86400 seconds"),
        (["worker", "--every", "0.5"], "error: --every 0.5: use 1 to 86400 seconds"),
        (["worker", "--pool", "p", "--limit", "0"], "error: --limit 0: use 1 to 1000 runs"),
        (["serve", "--port", "99999"], "error: --port 99999: use 1 to 65535"),
        (["serve", "--port", "0"], "error: --port 0: use 1 to 65535"),
        (["deploy", "--interval", "nan"], "error: --interval nan: use 5 to 86400 seconds"),
        (["deploy", "--interval", "1e12"], "error: --interval 1e+12: use 5 to 86400 seconds"),
    ],
)
@NO_STORE
def test_numbers_out_of_range(settings, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    one_error_line(args, message)


BOMBS = {
    "repeat": "{{ 'A' * 1000000000 }}",
    "range": "{% for i in range(10**9) %}x{% endfor %}",
    "join": "{{ ('x' * 100000)|join('y' * 100000) }}",
    "percent": "{{ '%0999999999d' % 1 }}",
    "percent-star": "{{ '%*d' % (999999999, 1) }}",
    "format-filter": "{{ '%0999999999d'|format(1) }}",
    "format-method": "{{ '{:>999999999}'.format('x') }}",
    "power": "{{ 9**(9**9) }}",  # Jinja reads 9**9**9 as (9**9)**9, which is small
    "product": "{{ (10**4000) * (10**4000) }}",
    "center": "{{ 'x'|center(1000000000) }}",
    "method": "{{ 'x'.ljust(1000000000) }}",
    "replace": "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
    "doubling": (
        "{% set ns = namespace(a='x') %}{% for i in range(64) %}"
        "{% set ns.a = ns.a ~ ns.a %}{% endfor %}{{ ns.a }}"
    ),
    "long-output": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
    "division": "{{ 1 / 0 }}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
}


@NO_STORE
@pytest.mark.parametrize("bomb", list(BOMBS.values()), ids=list(BOMBS))
@pytest.mark.parametrize("where", ["body", "subject"])
def test_a_template_that_builds_too_much_is_one_template_error(
    settings, tmp_path: Path, bomb: str, where: str
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    email = root / "learning-cycle" / "emails" / "invitation.en.md.j2"
    text = email.read_text()
    if where == "body":
        text += f"\n{bomb}\n"
    else:
        text = text.replace('subject: "', f'subject: "{bomb} ', 1)
    email.write_text(text)
    line = one_error_line(
        ["templates", "validate", str(root / "learning-cycle")],
        "error: learning-cycle/emails/invitation.en.md.j2: ",
    )
    assert len(line) < 300, line
