"""samverkan inbox import: a folder of calendar replies where some files are broken or forged.
Each bad file is one line of the report; the good ones are recorded all the same."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import launch_learning_cycle, read_maildir, tick
from tests.flows.test_resequence import START, WORKSHOP, calendar_of, reply

DATA = Path(__file__).parents[1] / "data" / "inbox"
runner = CliRunner()


def as_email(ics: str, sender: str | None) -> bytes:
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["Subject"] = "Accepted: Workshop"
    msg.set_content("Accepted")
    msg.add_alternative(ics, subtype="calendar", params={"method": "REPLY"})
    return bytes(msg)


def test_a_folder_with_broken_and_forged_replies(network, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP)
    tick(START)
    invite = read_maildir(Path(settings.mail_dir))["anna.lindqvist@forsakringskassan.example"][1]
    uid = str(calendar_of(invite)[0].walk("VEVENT")[0]["UID"])

    inbox = tmp_path / "replies"
    inbox.mkdir()
    (inbox / "a-anna.ics").write_text(
        reply(uid, "anna.lindqvist@forsakringskassan.example", "ACCEPTED")
    )
    (inbox / "b-sequence.ics").write_text(
        reply(uid, "per.holm@vgregion.example", "ACCEPTED").replace("SEQUENCE:0", "SEQUENCE:abc")
    )
    for name in ("not-a-calendar.ics", "truncated.eml", "no-attendee.ics"):
        text = (DATA / name).read_text().replace("{uid}", uid)
        (inbox / f"c-{name}").write_text(text)
    # Lars answers for Eva: the email is his, the attendee is hers.
    (inbox / "d-forged.eml").write_bytes(
        as_email(
            reply(uid, "eva.nilsson@goteborg.example", "DECLINED"),
            "Lars Ek <lars.ek@goteborg.example>",
        )
    )
    # Sent by the attendee herself (any case, with a display name): recorded.
    (inbox / "e-karin.eml").write_bytes(
        as_email(
            reply(uid, "karin.strom@vgregion.example", "TENTATIVE"),
            "Karin Ström <Karin.Strom@VGRegion.example>",
        )
    )

    result = runner.invoke(app, ["inbox", "import", str(inbox)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "read 7 files: 2 replies recorded, 5 not recorded"
    assert (
        "  recorded: anna.lindqvist@forsakringskassan.example: ACCEPTED for workshop of cycle 1"
        in lines
    )
    assert "  recorded: karin.strom@vgregion.example: TENTATIVE for workshop of cycle 1" in lines
    problems = [line for line in lines if line.startswith("  not recorded: ")]
    assert len(problems) == 5 and len(lines) == 8, result.output
    by_file = {p.removeprefix("  not recorded: ").split(":")[0]: p for p in problems}
    assert sorted(by_file) == [
        "b-sequence.ics",
        "c-no-attendee.ics",
        "c-not-a-calendar.ics",
        "c-truncated.eml",
        "d-forged.eml",
    ]
    assert "SEQUENCE" in by_file["b-sequence.ics"]
    assert "exactly one attendee, not 0" in by_file["c-no-attendee.ics"]
    assert "no calendar part" in by_file["c-not-a-calendar.ics"]
    assert "not a valid calendar" in by_file["c-truncated.eml"]
    assert by_file["d-forged.eml"].endswith(
        "sent by lars.ek@goteborg.example, not by the attendee eva.nilsson@goteborg.example"
    )
    assert "Traceback" not in result.output

    shown = json.loads(runner.invoke(app, ["cycle", "show", str(cycle_id), "--json"]).output)
    assert shown["id"] == cycle_id
    # Only the two good answers count: the forged decline left Eva without an answer.
    exported = json.loads(
        runner.invoke(app, ["participants", "export", "eva.nilsson@goteborg.example"]).output
    )
    assert "DECLINED" not in json.dumps(exported).upper()
    exported = json.loads(
        runner.invoke(app, ["participants", "export", "karin.strom@vgregion.example"]).output
    )
    assert "TENTATIVE" in json.dumps(exported).upper()
