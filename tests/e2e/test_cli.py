"""The samverkan command: in-process with CliRunner, and as a real subprocess."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import EXAMPLE_CSV, read_maildir

runner = CliRunner()
SAMVERKAN = str(Path(sys.executable).parent / "samverkan")
LAUNCH = [
    "cycle",
    "launch",
    "learning-cycle",
    "--name",
    "Vår 2027",
    "--start",
    "2027-01-20T09:00",
    "--var",
    "workshop_at=2027-02-10T09:00",
    "--var",
    "location=Stadshuset",
]


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def all_commands(*, groups: bool = False) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            if groups:
                found.append(path)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found.append(path)

    walk(get_command(app), [])
    assert len(found) >= 13
    return found


def example_lines(help_text: str) -> list[str]:
    """The lines of the paragraphs of a help text that show an example, as written."""
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return [
        line
        for p in paragraphs
        if "Example" in p
        for line in p.splitlines()
        if line.strip() != "\b"
    ]


@pytest.mark.parametrize("command", all_commands(groups=True), ids=lambda c: " ".join(c) or "-")
def test_every_help_shows_its_examples_as_written(command: list[str]) -> None:
    """Each command and group has an example of itself, and --help keeps its lines as they are
    in the source (one command per line, continuation lines as written), not re-wrapped."""
    cmd: Any = get_command(app)
    for name in command:
        cmd = cmd.commands[name]
    lines = example_lines(cmd.help or "")
    shown = " ".join(["samverkan", *command])
    assert any(shown in line for line in lines), f"{shown} --help has no example of itself"
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    output = result.output.splitlines()
    for line in lines:
        assert f"  {line}" in output, f"{shown} --help re-wrapped {line!r}:\n{result.output}"


def test_every_change_of_a_plan_can_be_previewed_and_guarded() -> None:
    """Every stage command, and pausing, resuming, cancelling and adding to a cycle, ends with
    the same three options."""
    top: Any = get_command(app)
    changes = [["stage", name] for name in top.commands["stage"].commands] + [
        ["cycle", name] for name in ("pause", "resume", "cancel", "add-participants")
    ]
    assert len(changes) == 10
    for path in changes:
        cmd = top.commands[path[0]].commands[path[1]]
        options = [p.opts[0] for p in cmd.params if p.opts[0].startswith("--")]
        assert options[-3:] == ["--dry-run", "--reason", "--expect-version"], path
        assert "--dry-run" in invoke(*path, "--help").output


def test_version_and_help() -> None:
    assert invoke("--version").output.strip() == "samverkan 0.1.0"
    top = invoke("--help")
    assert top.exit_code == 0 and "Example:  samverkan demo" in top.output


def test_import_list_launch_show_in_process(settings) -> None:
    result = invoke("participants", "import", str(EXAMPLE_CSV))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "imported 13 new and updated 0 participants"
    listed = json.loads(invoke("participants", "list", "--json").output)
    assert len(listed) == 13 and {p["role"] for p in listed} == {
        "service_user",
        "professional",
        "manager",
        "politician",
        "facilitator",
    }
    result = invoke(*LAUNCH, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"id": 1}
    shown = invoke("cycle", "show", "1")
    assert "invitation" in shown.output and "pending (needs approval)" in shown.output
    assert json.loads(invoke("cycle", "list", "--json").output)[0]["name"] == "Vår 2027"
    drafts = invoke("drafts", "1", "invitation", "--participant", "sara.ahmadi@goteborg.example")
    assert "Subject: Welcome to Vår 2027" in drafts.output
    assert "cycle.launch" in invoke("audit", "1").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cycle", "show", "42"], "error: no cycle with id 42"),
        (
            ["cycle", "launch", "nope", "--name", "x", "--start", "2027-01-01"],
            "error: unknown template 'nope'",
        ),
        ([*LAUNCH[:6], "20 januari", *LAUNCH[7:]], "error: invalid --start '20 januari'"),
        ([*LAUNCH, "--timezone", "Sweden"], "error: unknown time zone 'Sweden'"),
        ([*LAUNCH[:7], "--var", "location=x"], "error: missing variable workshop_at"),
        ([*LAUNCH, "--var", "oops"], "error: --var takes KEY=VALUE, not 'oops'"),
        (["drafts", "1", "invitation"], "error: no cycle with id 1"),
        (["tick", "--now", "tomorrow"], "error: invalid --now 'tomorrow'"),
        (["cycle", "list"], "error: SAMVERKAN_SMTP_URL: must start with smtp:// or smtps://"),
        (["templates", "validate", "/nowhere"], "error: unknown template '/nowhere'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    settings, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    invoke("participants", "import", str(EXAMPLE_CSV))
    if "SMTP" in message:
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", "http://mail.example")
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [message] or result.output.strip().startswith(
        message
    ), result.output
    assert "Traceback" not in result.output


def test_bad_rows_are_listed_one_per_line(settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "name,email,organisation,role,language\nA,a@x.example,Org,king,sv\nB,nope,Org,manager,sv\n"
    )
    result = invoke("participants", "import", str(bad))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("line 2: unknown role 'king'")
    assert lines[1].startswith("line 3: bad email 'nope'")
    assert lines[2] == "error: 2 invalid row(s); nothing was imported"
    assert json.loads(invoke("participants", "list", "--json").output) == []


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SAMVERKAN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.subprocess
def test_a_coordinator_session_as_a_subprocess(tmp_path: Path, user_env: dict[str, str]) -> None:
    """Defaults only: ./samverkan.db and ./mail in the working folder, Prefect embedded."""
    assert (
        run("participants", "import", str(EXAMPLE_CSV), env=user_env, cwd=tmp_path).returncode == 0
    )
    launched = run(*LAUNCH, env=user_env, cwd=tmp_path)
    assert (launched.returncode, launched.stdout.strip()) == (0, "1")
    assert run("approve", "1", "invitation", env=user_env, cwd=tmp_path).returncode == 0
    ticked = run("tick", "--now", "2027-01-20T09:00", env=user_env, cwd=tmp_path)
    assert ticked.returncode == 0, ticked.stderr
    assert "cycle 1: invitation (email) -> done, 13 messages" in ticked.stdout
    assert "cycle 1: workshop (meeting) -> done, 13 messages" in ticked.stdout
    assert "delivery: 26 sent" in ticked.stdout
    for stream in (ticked.stdout, ticked.stderr):
        assert "Traceback" not in stream and "ERROR" not in stream and "Warning" not in stream
    assert ticked.stderr == ""
    assert (tmp_path / "samverkan.db").is_file()
    mail = read_maildir(tmp_path / "mail")
    assert len(mail) == 13 and all(len(m) == 2 for m in mail.values())


@pytest.mark.subprocess
def test_errors_in_a_subprocess_have_no_traceback(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run("cycle", "show", "7", env=user_env, cwd=tmp_path)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (
        2,
        "error: no cycle with id 7 (see: samverkan cycle list)",
        "",
    )
    user_env["SAMVERKAN_TIMEZONE"] = "Nowhere/Land"
    result = run("cycle", "list", env=user_env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: SAMVERKAN_TIMEZONE: unknown time zone 'Nowhere/Land'"


@pytest.mark.subprocess
def test_the_demo_runs_clean(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = run("demo", "--dir", str(tmp_path / "demo"), env=user_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for bad in ("Traceback", "ERROR", "Warning", "warning"):
        assert bad not in result.stdout
    assert "The plan of cycle 1 (completed):" in result.stdout
    mail = read_maildir(tmp_path / "demo" / "mail")
    # The 13 participants, and Försäkringskassan's signer of the invitation.
    assert len(mail) == 14
    # 51 to participants and the coordinator; to the signer: asked, reminded (the demo's
    # clock jumps days); to the coordinator: the invitation was due and not signed.
    assert sum(len(m) for m in mail.values()) == 54
    assert len(mail["signering@forsakringskassan.example"]) == 2
    assert "invitation: waiting, 0 messages; waiting for sign-off from" in result.stdout
    assert "invitation: done, 13 messages" in result.stdout
    # Eight answered on their pages, so the reminder went to the other five; then the report.
    assert (
        "followup-reminder: done, 5 messages; 8 left out: already answered followup"
        in result.stdout
    )
    report = tmp_path / "demo" / "reflection-1.html"
    assert f"The reflection report: {report}" in result.stdout
    assert "Med deras egna ord" in report.read_text() and "<svg" in report.read_text()


def test_changing_a_cycle_from_the_command_line(settings) -> None:
    invoke("participants", "import", str(EXAMPLE_CSV))
    invoke(*LAUNCH)
    preview = invoke("stage", "skip", "1", "workshop-reminder", "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert preview.output.splitlines()[:2] == [
        "skip workshop-reminder in cycle 1 (plan version 1 -> 2)",
        "  change: workshop-reminder: pending -> skipped",
    ]
    assert preview.output.splitlines()[-1] == (
        "dry run: nothing was changed. To apply exactly this, add --expect-version 1"
    )
    assert invoke("stage", "skip", "1", "workshop-reminder", "--expect-version", "1").exit_code == 0
    stale = invoke("stage", "cancel", "1", "followup", "--expect-version", "1")
    assert stale.exit_code == 2
    assert stale.output.startswith("error: the plan of cycle 1 changed since you looked at it")
    again = invoke("stage", "skip", "1", "workshop-reminder")
    assert (again.exit_code, again.output.strip()) == (
        2,
        "error: cannot skip 'workshop-reminder': it is skipped",
    )
    added = invoke(
        "stage",
        "add",
        "1",
        "--kind",
        "email",
        "--key",
        "politicians",
        "--template",
        "progress-note",
        "--audience",
        "role=politician",
        "--after",
        "workshop",
        "--offset",
        "1d",
        "--reason",
        "the board asked",
    )
    assert added.exit_code == 0, added.output
    assert "2 of 13 recipients if it ran now (audience role=politician)" in added.output
    assert "(reason: the board asked)" in invoke("audit", "1").output
    for args, message in [
        (
            ["stage", "add", "1", "--kind", "fax", "--key", "x", "--at", "2027-02-01T09:00"],
            "error: unknown kind 'fax'",
        ),
        (
            [
                "stage",
                "add",
                "1",
                "--kind",
                "email",
                "--key",
                "x",
                "--template",
                "nope",
                "--at",
                "2027-02-01T09:00",
            ],
            "error: no email template 'nope'",
        ),
        (["stage", "move", "1", "followup", "--after", "nowhere"], "error: no stage 'nowhere'"),
        (["stage", "reschedule", "1", "workshop", "--at", "soon"], "error: invalid --at 'soon'"),
        (["inbox", "import", "/no/such/path"], "error: no such file or folder: /no/such/path"),
        (
            ["cycle", "add-participants", "1", "--email", "ghost@x.example"],
            "error: no participant with email ghost@x.example",
        ),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(message), (args, result.output)
        assert len(result.output.strip().splitlines()) == 1


def test_report_indicators_export_and_erase_from_the_command_line(settings, tmp_path: Path) -> None:
    invoke("participants", "import", str(EXAMPLE_CSV))
    assert invoke(*LAUNCH, "--steering", "board@region.example").exit_code == 0
    out = tmp_path / "r.html"
    result = invoke("report", "1", "--out", str(out))
    assert (result.exit_code, result.output.strip()) == (0, f"wrote {out}")
    assert "<h1>Reflektion: Vår 2027</h1>" in out.read_text()
    assert invoke("report", "1", "--format", "md").output.startswith("# Reflektion: Vår 2027")
    csv_out = invoke("indicators", "--format", "csv")
    assert csv_out.exit_code == 0
    assert csv_out.output.splitlines()[0] == (
        "schema,cycle_id,cycle_name,cycle_start,organisation,role,indicator,value,n,suppressed"
    )
    exported = json.loads(invoke("participants", "export", "sara.ahmadi@goteborg.example").output)
    assert exported["participant"]["name"] == "Sara Ahmadi"
    erased = invoke("participants", "erase", "sara.ahmadi@goteborg.example", "--yes")
    assert erased.exit_code == 0 and erased.output.startswith("erased sara.ahmadi@goteborg.example")
    for args, message in [
        (
            ["participants", "export", "sara.ahmadi@goteborg.example"],
            "error: no participant with email sara.ahmadi@goteborg.example",
        ),
        (["report", "9"], "error: no cycle with id 9"),
        (["report", "1", "--format", "pdf"], "error: unknown format 'pdf' (use html or md)"),
        (["indicators", "--cycle", "9"], "error: no cycle with id 9"),
        (["indicators", "--format", "xml"], "error: unknown format 'xml' (use csv or json)"),
        ([*LAUNCH, "--steering", "not-an-email"], "error: --steering: 'not-an-email' is not"),
        (
            ["participants", "erase", "nobody@x.example", "--yes"],
            "error: no participant with email nobody@x.example",
        ),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith(message), (args, result.output)
