"""Right of access and erasure, checked on a cycle that ran."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from flows.people.answers import record_answers
from flows.people.privacy import erase_person, export_person
from flows.reporting import indicators as ind
from store.errors import NotFound
from store.models import AccessToken, Message, Participant, Response
from tests.conftest import launch_learning_cycle, read_maildir, tick

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
SARA = "sara.ahmadi@goteborg.example"
ANSWERED = [SARA, "anna.lindqvist@forsakringskassan.example", "per.holm@vgregion.example"]


def test_export_then_erase_keeps_the_numbers_and_stops_the_mail(network, settings) -> None:
    cycle_id = launch_learning_cycle(network, settings, START, WORKSHOP, location="Here")
    tick(START)
    tick(WORKSHOP + timedelta(days=7))
    for i, email in enumerate(ANSWERED):
        record_answers(
            network,
            settings,
            cycle_id=cycle_id,
            key="followup",
            email=email,
            answers={"scale-now": 4 + i, "what-is-better": f"Sara's words {i}"},
        )

    data = export_person(network, email="SARA.AHMADI@goteborg.example")
    assert data["participant"]["name"] == "Sara Ahmadi"
    assert data["participant"]["organisation"] == "Göteborgs Stad"
    assert [c["name"] for c in data["cycles"]] == ["Vår 2027"]
    assert len(data["messages"]) == 4  # invitation, invite, reminder, follow-up
    assert {(a["question"], a["scale"], a["text"]) for a in data["answers"]} == {
        ("scale-now", 4, None),
        ("what-is-better", None, "Sara's words 0"),
    }

    before = [(r.organisation, r.role, r.indicator, r.value) for r in ind.compute(network).rows()]
    done = erase_person(network, email=SARA, reason="asked by phone")
    assert done["written_answers"] == 1
    after = [(r.organisation, r.role, r.indicator, r.value) for r in ind.compute(network).rows()]
    assert after == before  # the anonymous numbers stay

    with Session(network) as s:
        person = s.exec(select(Participant).where(Participant.erased)).one()
        assert (person.name, person.email) == ("[erased]", f"erased-{person.id}@invalid")
        assert (
            s.exec(select(AccessToken).where(AccessToken.participant_id == person.id)).all() == []
        )
        rows = s.exec(select(Response).where(Response.participant_id == person.id)).all()
        assert {(r.scale_value, r.text) for r in rows} == {(4, None), (None, None)}
        texts = " ".join(
            m.text + m.to_email + m.to_name
            for m in s.exec(select(Message).where(Message.participant_id == person.id))
        )
        assert "Sara" not in texts and SARA not in texts

    with pytest.raises(NotFound):
        export_person(network, email=SARA)
    seen = len(read_maildir(Path(settings.mail_dir))[SARA])
    tick(WORKSHOP + timedelta(days=12))  # the follow-up reminder
    assert len(read_maildir(Path(settings.mail_dir))[SARA]) == seen  # nothing more for her
