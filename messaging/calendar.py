"""iCalendar invites (iMIP): REQUEST and CANCEL for one attendee, with a VTIMEZONE.

Shaped as calendar clients need it (RFC 5545, RFC 5546, RFC 6047): METHOD in the calendar (and,
in compose.py, on the MIME part), ORGANIZER = the sender, the recipient as the single ATTENDEE
with RSVP=TRUE, a UID stable for the meeting's life, SEQUENCE from the database, DTSTAMP in
UTC, and times with a TZID whose VTIMEZONE is written in the RRULE form (one Outlook version
mishandled the RDATE form that ``add_missing_timezones`` writes).
"""

from __future__ import annotations

import calendar as _cal
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress
from icalendar.enums import STATUS

from messaging.headers import clean_header

PRODID = "-//samverkan//samverkan 0.1//EN"
_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@dataclass(frozen=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True)
class MeetingInfo:
    uid: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    summary: str
    location: str
    description: str
    tzid: str


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """UTC instants in ``year`` at which the zone's UTC offset changes."""
    found = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(days=1)
    while t < end:
        nxt = t + step
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = t, nxt  # bisect to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi.replace(second=0, microsecond=0))
        t = nxt
    return found


def _nth(local: datetime) -> int:
    last_day = _cal.monthrange(local.year, local.month)[1]
    return -1 if local.day + 7 > last_day else (local.day - 1) // 7 + 1


def _same_rule_in(year: int, local: datetime) -> datetime:
    """The date in ``year`` that matches the rule (nth weekday of the month) of ``local``."""
    nth, weekday = _nth(local), local.weekday()
    days = [
        d
        for d in _cal.Calendar().itermonthdates(year, local.month)
        if d.month == local.month and d.weekday() == weekday
    ]
    day = days[-1] if nth == -1 else days[nth - 1]
    return datetime.combine(day, local.time())


@lru_cache(maxsize=64)
def vtimezone(tzid: str, year: int) -> Timezone:
    """A VTIMEZONE for ``tzid`` with yearly rules taken from its transitions in ``year``."""
    zone = ZoneInfo(tzid)
    tz = Timezone()
    tz.add("tzid", tzid)
    changes = _transitions(zone, year)
    if not changes:
        fixed = TimezoneStandard()
        offset = datetime(year, 1, 1, tzinfo=zone).utcoffset() or timedelta(0)
        fixed.add("dtstart", datetime(1970, 1, 1))
        fixed.add("tzoffsetfrom", offset)
        fixed.add("tzoffsetto", offset)
        fixed.add("tzname", datetime(year, 1, 1, tzinfo=zone).tzname() or tzid)
        tz.add_component(fixed)
        return tz
    for instant in changes:
        before = (instant - timedelta(minutes=1)).astimezone(zone).utcoffset() or timedelta(0)
        after = instant.astimezone(zone).utcoffset() or timedelta(0)
        local_before = (instant + before).replace(tzinfo=None)  # wall clock as it was
        part: TimezoneDaylight | TimezoneStandard = (
            TimezoneDaylight() if after > before else TimezoneStandard()
        )
        # The first onset is dated 1970, as Outlook and Google write it, so that every
        # meeting time falls after it.
        part.add("dtstart", _same_rule_in(1970, local_before))
        part.add(
            "rrule",
            {
                "freq": "yearly",
                "bymonth": local_before.month,
                "byday": f"{_nth(local_before)}{_DAYS[local_before.weekday()]}",
            },
        )
        part.add("tzoffsetfrom", before)
        part.add("tzoffsetto", after)
        part.add("tzname", instant.astimezone(zone).tzname() or tzid)
        tz.add_component(part)
    return tz


def _cal_address(person: Person, **params: object) -> vCalAddress:
    # Quotes in a CN come out as RFC 6868 ^' which some readers show literally: drop them.
    name = clean_header(person.name).replace('"', "")
    return vCalAddress.new(person.email, cn=name or None, **params)  # type: ignore[arg-type]


def build_invite(
    meeting: MeetingInfo,
    *,
    organizer: Person,
    attendee: Person,
    method: str = "REQUEST",
    stamp: datetime | None = None,
) -> str:
    """The iCalendar text of a REQUEST or CANCEL of ``meeting`` for one attendee."""
    if method not in {"REQUEST", "CANCEL"}:
        raise ValueError(f"unsupported iTIP method {method!r}")
    zone = ZoneInfo(meeting.tzid)
    event = Event.new(
        uid=meeting.uid,
        sequence=meeting.sequence,
        stamp=(stamp or datetime.now(UTC)).astimezone(UTC),
        start=meeting.starts_at.astimezone(zone),
        end=meeting.ends_at.astimezone(zone),
        summary=meeting.summary,
        location=meeting.location or None,
        description=meeting.description or None,
        organizer=_cal_address(organizer),
        attendees=[_attendee(attendee)],
        status=STATUS.CANCELLED if method == "CANCEL" else STATUS.CONFIRMED,
    )
    cal = Calendar.new(
        prodid=PRODID,
        method=method,
        subcomponents=[vtimezone(meeting.tzid, meeting.starts_at.astimezone(zone).year), event],
    )
    cal.pop("UID", None)  # Calendar.new adds a random calendar UID; the event's is what counts
    return cal.to_ical().decode("utf-8")


_STAND_IN = Person("Attendee", "attendee@samverkan.invalid")


def _attendee(person: Person) -> vCalAddress:
    return _cal_address(person, partstat="NEEDS-ACTION", rsvp=True, role="REQ-PARTICIPANT")


_QUOTED_CN = re.compile("[,;:\u2019 ']")  # as icalendar decides to quote a CN


def attendee_line(person: Person) -> str:
    """The folded ``ATTENDEE`` content line of ``person``, with its CRLF: the text icalendar
    writes for ``_attendee(person)`` (tested against it), at a tenth of the cost; it is the
    only part of an invite written per recipient."""
    name = clean_header(person.name).replace('"', "").replace("^", "^^")  # RFC 6868
    params = []
    if name:
        params.append(f'CN="{name}"' if _QUOTED_CN.search(name) else f"CN={name}")
    params += ["PARTSTAT=NEEDS-ACTION", "ROLE=REQ-PARTICIPANT", "RSVP=TRUE"]
    return _fold(f"ATTENDEE;{';'.join(params)}:mailto:{person.email}") + "\r\n"


def _fold(line: str, limit: int = 75) -> str:
    """RFC 5545 folding as icalendar does it: lines under ``limit`` octets, a UTF-8
    character never split, and a backslash or caret escape never split from what follows."""
    if line.isascii():  # one byte a character: cut by slicing
        lines, rest = [], line
        while len(rest) >= limit:
            cut = limit - 2 if rest[limit - 2] in "\\^" else limit - 1
            lines.append(rest[:cut])
            rest = rest[cut:]
        return "\r\n ".join([*lines, rest])
    lines = []
    current: list[str] = []
    size = 0
    for char in line:
        n = len(char.encode("utf-8"))
        if current and size + n >= limit:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                lines.append("".join(current))
                current, size = [carried], len(carried.encode("utf-8"))
            else:
                lines.append("".join(current))
                current, size = [], 0
        current.append(char)
        size += n
    if current:
        lines.append("".join(current))
    return "\r\n ".join(lines)


class Invites:
    """Invites to one meeting for many attendees: the calendar is built once per meeting
    version, and only the ATTENDEE line is written per person. The result is the same text
    as ``build_invite`` gives for that attendee (tested), at a fraction of the cost."""

    def __init__(self, *, organizer: Person, method: str, stamp: datetime) -> None:
        self.organizer, self.method, self.stamp = organizer, method, stamp
        self._shells: dict[MeetingInfo, tuple[str, str]] = {}

    def for_attendee(self, meeting: MeetingInfo, attendee: Person) -> str:
        shell = self._shells.get(meeting)
        if shell is None:
            text = build_invite(
                meeting,
                organizer=self.organizer,
                attendee=_STAND_IN,
                method=self.method,
                stamp=self.stamp,
            )
            head, found, tail = text.partition(attendee_line(_STAND_IN))
            assert found and attendee_line(_STAND_IN) not in tail
            shell = self._shells[meeting] = (head, tail)
        return shell[0] + attendee_line(attendee) + shell[1]


# An ATTENDEE content line with its folded continuations: the one part of an invite that is
# written per person (``Invites``), and that the summary does not read.
_ATTENDEE_LINES = re.compile(r"^ATTENDEE[;:][^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.M)


def summary(ics: str) -> str:
    """One line about an invite, as a person reads it in their calendar: what, when, where.

    ``Workshop: 2027-02-10 09:00–12:00 (Europe/Stockholm), Stadshuset [invitation]``.

    Read from the invite without its attendee, and remembered: the invites of one meeting to
    5,000 people differ only there, and parsing each took 5 ms (24 of the 30 s sign-off's
    check spent on a 5,000-person meeting, ``python -m benchmarks signoff``)."""
    return _summary(_ATTENDEE_LINES.sub("", ics))


@lru_cache(maxsize=64)
def _summary(ics: str) -> str:
    cal = Calendar.from_ical(ics)
    method = str(cal.get("METHOD", ""))
    events = list(cal.walk("VEVENT"))
    if not events:
        return ""
    event = events[0]
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    zone = getattr(start.tzinfo, "key", None) or str(start.tzinfo or "")
    when = f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}" + (f" ({zone})" if zone else "")
    where = str(event.get("LOCATION", "") or "")
    what = {"REQUEST": "invitation", "CANCEL": "cancellation"}.get(method, method.lower())
    return f"{event.get('SUMMARY', '')}: {when}" + (f", {where}" if where else "") + f" [{what}]"
