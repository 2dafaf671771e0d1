"""A template that fails only for some participants' data passes the launch (which checks one
participant per language and role) and fails when its stage runs: the stage is marked failed
with the reason, the coordinator sees it, and nothing else in the cycle is held back."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows.cycles.overview import cycle_overview
from flows.settings import REPO_TEMPLATES
from tests.conftest import launch_learning_cycle, read_maildir, tick

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
# Lars Ek's name has 7 characters; the first Swedish professional's, checked at launch, 14.
FAILS_FOR_LARS = "\nDin plats: {{ 100 // (participant.name | length - 7) }}\n"


def templates_failing_for_lars(tmp_path: Path) -> Path:
    """A copy of the bundled templates whose Swedish workshop invite divides by zero for Lars
    Ek alone."""
    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    workshop = root / "learning-cycle" / "emails" / "workshop.sv.md.j2"
    workshop.write_text(workshop.read_text(encoding="utf-8") + FAILS_FOR_LARS, encoding="utf-8")
    return root


def test_a_template_that_fails_for_one_participant_fails_its_stage_alone(
    network, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = templates_failing_for_lars(tmp_path)
    monkeypatch.setenv("SAMVERKAN_TEMPLATES_DIR", str(root))
    custom = settings.model_copy(update={"templates_dir": root})
    cycle_id = launch_learning_cycle(network, custom, START, WORKSHOP)

    report = tick(START)
    lines = report.lines()
    assert "  cycle 1: invitation (email) -> done, 13 messages" in lines
    [failed] = [line for line in lines if "workshop (meeting) -> failed" in line]
    assert "workshop.sv.md.j2" in failed and "by zero" in failed
    # The invitation of the same run went out in the same tick.
    mail = read_maildir(Path(settings.mail_dir))
    assert len(mail) == 13 and all(len(m) == 1 for m in mail.values())

    stages = {s["key"]: s for s in cycle_overview(network, cycle_id=cycle_id)["stages"]}
    assert stages["workshop"]["status"] == "failed"
    assert "workshop.sv.md.j2" in stages["workshop"]["note"]
    # The plan moves on: the next stage runs when it is due.
    tick(WORKSHOP - timedelta(days=2))
    stages = {s["key"]: s for s in cycle_overview(network, cycle_id=cycle_id)["stages"]}
    assert stages["workshop-reminder"]["status"] == "done"
