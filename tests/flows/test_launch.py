"""Launching a cycle: every bad input is one clear error and creates nothing."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from flows.cycles.approve import approve_stage, stage_drafts
from flows.cycles.launch import launch_cycle
from flows.cycles.overview import cycle_overview
from flows.settings import REPO_TEMPLATES
from store.errors import InvalidInput, NotFound, StateError, TemplateError
from store.models import Cycle, Message, Stage

GOOD = dict(
    template="learning-cycle",
    name="Vår 2027",
    start="2027-01-20T09:00",
    variables={"workshop_at": "2027-02-10T09:00", "location": "Stadshuset"},
)


def counts(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return tuple(
            s.exec(select(func.count()).select_from(t)).one()  # type: ignore[return-value]
            for t in (Cycle, Stage, Message)
        )


def launch(engine, settings, **changes):  # type: ignore[no-untyped-def]
    return launch_cycle(engine, settings, **{**GOOD, **changes})


def test_launch_copies_the_plan_with_due_times_in_the_cycle_zone(network, settings) -> None:
    cycle_id = launch(network, settings)
    data = cycle_overview(network, cycle_id=cycle_id)
    assert data["participants"] == 13 and data["status"] == "running"
    assert [(s["key"], s["due"]) for s in data["stages"]] == [
        ("invitation", "2027-01-20T09:00:00+01:00"),
        ("workshop", "2027-01-20T09:00:00+01:00"),
        ("workshop-reminder", "2027-02-08T09:00:00+01:00"),
        ("followup", "2027-02-17T09:00:00+01:00"),
        ("followup-reminder", "2027-02-22T09:00:00+01:00"),
        ("reflection", "2027-02-24T09:00:00+01:00"),
    ]
    assert counts(network) == (1, 6, 0)  # nothing is drafted before it is due


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"template": "no-such"},
            NotFound,
            "unknown template 'no-such' (available: annual-survey, learning-cycle)",
        ),
        ({"start": "next tuesday"}, InvalidInput, "invalid --start 'next tuesday'"),
        ({"timezone": "Europe/Gothenburg"}, InvalidInput, "unknown time zone 'Europe/Gothenburg'"),
        ({"variables": {"location": "x"}}, InvalidInput, "missing variable workshop_at"),
        (
            {"variables": {**GOOD["variables"], "workshop_at": "2027-13-01"}},
            InvalidInput,
            "invalid --var workshop_at '2027-13-01'",
        ),
        ({"variables": {**GOOD["variables"], "room": "4"}}, InvalidInput, "has no variable 'room'"),
        (
            {"variables": {**GOOD["variables"], "workshop_at": "2027-01-10T09:00"}},
            InvalidInput,
            "before the cycle starts",
        ),
        ({"name": "Vår\n2027"}, InvalidInput, "--name must be one line"),
        ({"audience": "role=king"}, InvalidInput, "unknown role 'king'"),
        ({"audience": "org=Nowhere"}, InvalidInput, "no participants to invite match the audience"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(
    network, settings, changes, error, message
) -> None:
    with pytest.raises(error) as caught:
        launch(network, settings, **changes)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert counts(network) == (0, 0, 0)


def test_a_launch_without_participants_says_how_to_add_them(engine, settings) -> None:
    with pytest.raises(InvalidInput, match="samverkan participants import"):
        launch(engine, settings)


def test_a_template_error_is_found_at_launch_for_the_recipients_it_reaches(
    network, settings, tmp_path: Path
) -> None:
    """A variable used only in the English reminder breaks the launch, not a send in a month."""
    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    reminder = root / "learning-cycle" / "emails" / "workshop-reminder.en.md.j2"
    reminder.write_text(reminder.read_text() + "\nBring {{ vars.what_to_bring }}.\n")
    custom = settings.model_copy(update={"templates_dir": root})
    with pytest.raises(
        TemplateError,
        match=r"workshop-reminder\.en\.md\.j2: 'dict object' has no attribute 'what_to_bring'",
    ):
        launch(network, custom)
    assert counts(network) == (0, 0, 0)


def test_an_audience_limits_who_takes_part(network, settings) -> None:
    cycle_id = launch(network, settings, audience="role=politician,manager")
    assert cycle_overview(network, cycle_id=cycle_id)["participants"] == 5


def test_drafts_preview_before_the_stage_runs(network, settings) -> None:
    cycle_id = launch(network, settings)
    preview = stage_drafts(
        network,
        settings,
        cycle_id=cycle_id,
        key="invitation",
        participant="SARA.AHMADI@goteborg.example",
    )
    assert not preview.stored
    [draft] = preview.drafts
    assert draft.subject == "Welcome to Vår 2027"
    assert "Wednesday 10 February 2027 at 09:00" in draft.text
    follow = stage_drafts(
        network,
        settings,
        cycle_id=cycle_id,
        key="followup",
        participant="sara.ahmadi@goteborg.example",
    ).drafts[0]
    assert "Answer the questions here (http://127.0.0.1:8000/a/<personal-link>)" in follow.text
    assert "SVLINK" not in follow.text
    assert counts(network) == (1, 6, 0)  # a preview writes nothing


def test_unknown_cycle_and_stage_are_clear_errors(network, settings) -> None:
    cycle_id = launch(network, settings)
    with pytest.raises(NotFound, match="no cycle with id 99"):
        cycle_overview(network, cycle_id=99)
    with pytest.raises(
        NotFound, match=r"cycle 1 has no stage 'party' \(stages: invitation, workshop"
    ):
        stage_drafts(network, settings, cycle_id=cycle_id, key="party")
    with pytest.raises(StateError, match="does not need approval"):
        approve_stage(network, cycle_id=cycle_id, key="workshop")


def test_approving_in_advance(network, settings) -> None:
    cycle_id = launch(network, settings)
    text = approve_stage(network, cycle_id=cycle_id, key="invitation", reason="read it")
    assert "in advance" in text
    with pytest.raises(StateError, match="is approved"):
        approve_stage(network, cycle_id=cycle_id, key="invitation")
    assert datetime.now(UTC).year >= 2026


def test_an_error_in_a_meeting_update_or_cancellation_stops_launch_add_and_edit(
    network, settings, tmp_path: Path
) -> None:
    """A meeting's update and cancellation go out only when it moves or is called off; an error
    in them must stop the launch, or the stage add or edit that brings them in, at once."""
    from flows.cycles.resequence import add_stage, edit_stage
    from tests.e2e.test_cli import invoke

    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    folder = root / "learning-cycle"
    cycle_id = launch(network, settings, template=str(folder))
    for name in ("workshop-update.en", "workshop-cancel.sv"):
        path = folder / "emails" / f"{name}.md.j2"
        good = path.read_text()
        path.write_text(good + "\nBring {{ vars.what_to_bring }}.\n")
        error = (
            f"learning-cycle/emails/{name}.md.j2: 'dict object' has no attribute 'what_to_bring'"
        )
        before = counts(network)
        result = invoke(
            "cycle",
            "launch",
            str(folder),
            "--name",
            "Höst 2027",
            "--start",
            "2027-01-20T09:00",
            "--var",
            "workshop_at=2027-02-10T09:00",
            "--var",
            "location=Stadshuset",
        )
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [f"error: {error}"]
        with pytest.raises(TemplateError) as caught:
            add_stage(
                network,
                settings,
                cycle_id=cycle_id,
                key="second-workshop",
                kind="meeting",
                after="workshop",
                offset="1d",
                starts="2027-03-10T13:00",
            )
        assert str(caught.value) == error
        with pytest.raises(TemplateError) as caught:
            edit_stage(network, settings, cycle_id=cycle_id, key="workshop", template="workshop")
        assert str(caught.value) == error
        assert counts(network) == before  # nothing was created or changed
        path.write_text(good)
