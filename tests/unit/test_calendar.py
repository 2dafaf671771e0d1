"""Calendar invites, read back by icalendar and by an independent parser (vobject)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import vobject
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from messaging.calendar import (
    Invites,
    MeetingInfo,
    Person,
    _attendee,
    attendee_line,
    build_invite,
    vtimezone,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def meeting(start: datetime, **changes: object) -> MeetingInfo:
    values: dict[str, object] = dict(
        uid="meeting-1@coord.example",
        sequence=0,
        starts_at=start,
        ends_at=start + timedelta(hours=3),
        summary="Workshop – Vår 2027",
        location="Stadshuset, Göteborg",
        description="Välkommen",
        tzid="Europe/Stockholm",
    )
    values.update(changes)
    return MeetingInfo(**values)  # type: ignore[arg-type]


ORGANIZER = Person("Samordningsförbundet", "s@coord.example")


@pytest.mark.parametrize(
    ("local", "utc_hour"),
    [
        (datetime(2027, 2, 10, 9, 0), 8),
        (datetime(2027, 7, 1, 9, 0), 7),
        (datetime(2027, 10, 31, 9, 0), 8),
        (datetime(2027, 3, 28, 9, 0), 7),
    ],
)
def test_times_carry_the_right_offset_in_both_parsers(local: datetime, utc_hour: int) -> None:
    start = local.replace(tzinfo=STOCKHOLM)
    ics = build_invite(meeting(start), organizer=ORGANIZER, attendee=Person("A", "a@x.example"))
    ours = Calendar.from_ical(ics).walk("VEVENT")[0].decoded("dtstart")
    theirs = vobject.readOne(ics).vevent.dtstart.value
    for value in (ours, theirs):
        assert value.astimezone(ZoneInfo("UTC")).hour == utc_hour
    assert "TZID=Europe/Stockholm" in ics


def test_invite_has_method_uid_sequence_organizer_and_one_attendee() -> None:
    ics = build_invite(
        meeting(datetime(2027, 2, 10, 9, tzinfo=STOCKHOLM), sequence=2),
        organizer=ORGANIZER,
        attendee=Person("Anna Lindqvist", "anna@fk.example"),
    )
    cal = Calendar.from_ical(ics)
    assert cal["METHOD"] == "REQUEST"
    [event] = cal.walk("VEVENT")
    assert str(event["UID"]) == "meeting-1@coord.example"
    assert int(event["SEQUENCE"]) == 2
    assert str(event["ORGANIZER"]) == "mailto:s@coord.example"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:anna@fk.example"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendee.params["RSVP"] == "TRUE"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert event.decoded("dtstamp").tzinfo is not None
    assert len(cal.walk("VTIMEZONE")) == 1
    v = vobject.readOne(ics)
    assert v.vevent.uid.value == "meeting-1@coord.example"
    assert v.vevent.attendee.value == "mailto:anna@fk.example"


def test_hostile_names_stay_inside_their_parameter() -> None:
    name = 'Olena "O" Kovalenko, MSc; Role: boss\r\nATTENDEE:mailto:evil@x.example'
    ics = build_invite(
        meeting(datetime(2027, 2, 10, 9, tzinfo=STOCKHOLM)),
        organizer=ORGANIZER,
        attendee=Person(name, "olena@x.example"),
    )
    [event] = Calendar.from_ical(ics).walk("VEVENT")
    attendees = event["ATTENDEE"]
    assert not isinstance(attendees, list)  # still exactly one attendee
    assert (
        attendees.params["CN"]
        == "Olena O Kovalenko, MSc; Role: boss ATTENDEE:mailto:evil@x.example"
    )
    assert vobject.readOne(ics).vevent.attendee.params["CN"] == [attendees.params["CN"]]


def test_lines_are_folded_at_75_octets_without_splitting_characters() -> None:
    ics = build_invite(
        meeting(datetime(2027, 2, 10, 9, tzinfo=STOCKHOLM), summary="Å" * 120),
        organizer=ORGANIZER,
        attendee=Person("A", "a@x.example"),
    )
    for line in ics.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75
    assert str(Calendar.from_ical(ics).walk("VEVENT")[0]["SUMMARY"]) == "Å" * 120


def test_cancel_is_marked_cancelled() -> None:
    ics = build_invite(
        meeting(datetime(2027, 2, 10, 9, tzinfo=STOCKHOLM), sequence=1),
        organizer=ORGANIZER,
        attendee=Person("A", "a@x.example"),
        method="CANCEL",
    )
    cal = Calendar.from_ical(ics)
    assert cal["METHOD"] == "CANCEL"
    assert str(cal.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"


@pytest.mark.parametrize("tzid", ["America/New_York", "Australia/Sydney", "Asia/Tokyo"])
def test_other_zones_get_rules_that_match_zoneinfo(tzid: str) -> None:
    zone = ZoneInfo(tzid)
    ics = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
        + vtimezone(tzid, 2027).to_ical()
        + b"BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20270101T000000Z\r\n"
        + b"DTSTART;TZID="
        + tzid.encode()
        + b":20270115T090000\r\n"
        + b"END:VEVENT\r\nBEGIN:VEVENT\r\nUID:v\r\nDTSTAMP:20270101T000000Z\r\n"
        + b"DTSTART;TZID="
        + tzid.encode()
        + b":20270715T090000\r\nEND:VEVENT\r\n"
        + b"END:VCALENDAR\r\n"
    ).decode()
    parsed = vobject.readOne(ics)
    for event, month in zip(parsed.vevent_list, (1, 7), strict=True):
        expected = datetime(2027, month, 15, 9, tzinfo=zone).utcoffset()
        assert event.dtstart.value.utcoffset() == expected


@pytest.mark.parametrize(
    "name",
    ["Anna Lindqvist", 'Ångström-Öberg, Märta; "Mia" ^ the 3rd ' * 3, "", "李 小龍"],
)
def test_invites_built_once_per_meeting_are_the_same_as_one_by_one(name: str) -> None:
    """The shared calendar with a per-person ATTENDEE line is byte for byte what building
    the whole invite for that person gives."""
    meeting = MeetingInfo(
        uid="u-1@coord.example",
        sequence=2,
        starts_at=datetime(2027, 2, 10, 8, tzinfo=UTC),
        ends_at=datetime(2027, 2, 10, 11, tzinfo=UTC),
        summary="Workshop: Vår 2027",
        location="Stadshuset, sal 3",
        description="Workshop: Vår 2027",
        tzid="Europe/Stockholm",
    )
    organizer = Person("Samordningsförbundet", "s@coord.example")
    stamp = datetime(2027, 1, 20, 9, tzinfo=UTC)
    invites = Invites(organizer=organizer, method="CANCEL", stamp=stamp)
    invites.for_attendee(meeting, Person("Someone Else", "else@x.example"))  # built here
    person = Person(name, "anna@fk.example")
    expected = build_invite(
        meeting, organizer=organizer, attendee=person, method="CANCEL", stamp=stamp
    )
    assert invites.for_attendee(meeting, person) == expected


@settings(max_examples=400, deadline=None)
@given(
    # Any text, and plain ASCII with the characters that are quoted or escaped, long enough
    # to be folded at every position.
    name=st.one_of(st.text(max_size=90), st.text(alphabet="ab ^\\,;:'", max_size=160)),
    email=st.sampled_from(
        ["anna@fk.example", "a.very.long.address.indeed@forsakringskassan.example"]
    ),
)
def test_the_attendee_line_is_what_icalendar_writes(name: str, email: str) -> None:
    person = Person(name, email)
    reference = Event().content_line("ATTENDEE", _attendee(person)).to_ical().decode() + "\r\n"
    assert attendee_line(person) == reference


def test_an_escape_is_never_split_from_what_follows_when_folding() -> None:
    for filler in range(50, 80):
        for special in ("^", "\\", "é"):
            person = Person("x" * filler + special * 6 + " y", "anna@fk.example")
            reference = Event().content_line("ATTENDEE", _attendee(person)).to_ical().decode()
            assert attendee_line(person) == reference + "\r\n"


def test_the_summary_of_an_invite_is_read_without_its_attendee_and_says_the_same() -> None:
    """``summary`` drops the ATTENDEE lines before reading (and remembers the result): for
    attendees whose lines fold, quote and carry non-ASCII, it says exactly what reading the
    whole invite says, and invites that differ only in the attendee give one summary."""
    from messaging.calendar import Invites, MeetingInfo, Person, _summary, summary

    info = MeetingInfo(
        uid="u@x",
        sequence=2,
        starts_at=datetime(2027, 2, 10, 8, tzinfo=UTC),
        ends_at=datetime(2027, 2, 10, 11, tzinfo=UTC),
        summary="Workshop: samverkan, vår",
        location="Stadshuset, Göteborg",
        description="d",
        tzid="Europe/Stockholm",
    )
    invites = Invites(organizer=Person("O", "o@x.se"), method="REQUEST", stamp=datetime.now(UTC))
    people = [
        Person("Anna", "a@x.se"),
        Person("Olena Kovalenko, MSc", "olena.kovalenko@vgregion.example"),
        Person(
            "Åsa Öberg-Lindqvist Ärlig Långnamnsdotter med många delar", "asa@" + "x" * 60 + ".se"
        ),
    ]
    said = set()
    for person in people:
        ics = invites.for_attendee(info, person)
        assert "ATTENDEE" in ics
        whole = _summary.__wrapped__(ics)  # read the whole invite, not remembered
        assert summary(ics) == whole
        said.add(whole)
    assert said == {
        "Workshop: samverkan, vår: 2027-02-10 09:00–12:00 (Europe/Stockholm), "
        "Stadshuset, Göteborg [invitation]"
    }
