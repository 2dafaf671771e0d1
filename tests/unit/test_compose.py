"""Message shape and header safety (CVE-2024-6923 on this Python)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging.compose import Outgoing, to_bytes
from messaging.headers import clean_header

ATTACK = "Hej =?UTF-8?Q?=0A?=Bcc: evil@attacker.example"


def outgoing(**changes: object) -> Outgoing:
    values: dict[str, object] = dict(
        sender_name="Samordningsförbundet",
        sender_email="s@coord.example",
        to_name="Anna Lindqvist",
        to_email="anna@fk.example",
        subject="Välkommen",
        text="Hej Anna\n",
        html="<p>Hej Anna</p>",
        message_id="<m.1@coord.example>",
        date=datetime(2027, 1, 20, 8, 0, tzinfo=UTC),
        category="email",
    )
    values.update(changes)
    return Outgoing(**values)  # type: ignore[arg-type]


def parse(data: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(data, policy=policy.default)


@pytest.mark.parametrize(
    "value",
    [
        ATTACK,
        "=?utf-8?b?Cg==?=Bcc: evil@attacker.example",
        "Hej\r\nBcc: evil@attacker.example",
        "Hej\u2028Bcc: evil@attacker.example",
        "==??UTF-8?Q?=0A?=Bcc: evil@attacker.example",
    ],
)
def test_clean_header_leaves_no_way_to_start_a_header(value: str) -> None:
    cleaned = clean_header(value)
    assert "=?" not in cleaned
    assert not any(ord(c) < 32 or c in "\u2028\u2029\x7f" for c in cleaned)


@pytest.mark.parametrize("field", ["subject", "to_name", "sender_name"])
def test_no_header_can_be_injected_through_names_or_subjects(field: str) -> None:
    data = to_bytes(outgoing(**{field: ATTACK}))
    msg = parse(data)
    assert msg["Bcc"] is None
    assert b"\nBcc:" not in data and b"\rBcc:" not in data
    assert [a.addr_spec for a in msg["To"].addresses] == ["anna@fk.example"]


def test_plain_message_is_alternative_text_and_html_with_the_headers_clients_need() -> None:
    msg = parse(to_bytes(outgoing(subject="Välkommen till Vår 2027 – hösten")))
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == "Välkommen till Vår 2027 – hösten"
    assert msg["Message-ID"] == "<m.1@coord.example>"
    assert msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"].addresses[0].display_name == "Samordningsförbundet"
    assert msg["List-Unsubscribe"] is None  # an invitation is not a nudge


def test_reminders_say_how_to_stop() -> None:
    msg = parse(to_bytes(outgoing(category="reminder")))
    assert msg["List-Unsubscribe"] == "<mailto:s@coord.example?subject=unsubscribe>"


def test_calendar_message_has_the_imip_shape() -> None:
    ics = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    msg = parse(to_bytes(outgoing(ics=ics, ics_method="REQUEST", category="meeting")))
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = list(msg.iter_parts())
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar = list(alternative.iter_parts())[2]
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content() == ics
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content() == ics.encode()


def test_report_attachment_is_a_named_html_file_beside_the_alternative() -> None:
    report = "<!DOCTYPE html><p>Indikatorer – våren</p>\n" * 50
    msg = parse(to_bytes(outgoing(attachment=report, attachment_name="rapport vår/2027.html")))
    alternative, attachment = list(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    assert attachment.get_content_type() == "text/html"
    assert attachment.get_filename() == "rapport-v-r-2027.html"  # no path, no spaces
    assert attachment.get_content() == report


def test_every_line_is_short_and_ends_with_crlf() -> None:
    data = to_bytes(
        outgoing(
            subject="Inbjudan " * 30,
            to_name="Ångström-Öberg, Märta " * 6,
            text="x" * 500 + "\n.\nFrom here\ttab \n",
            html="<p>" + "å" * 300 + "</p>",
            ics="BEGIN:VCALENDAR\r\n" + "X:" + "y" * 300 + "\r\nEND:VCALENDAR\r\n",
        )
    )
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


# Names and subjects as coordinators and CSV files bring them: any text at all.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=120)


@settings(max_examples=300, deadline=None)
@given(name=texts, subject=texts.filter(lambda s: clean_header(s)), body=texts)
def test_what_a_mail_reader_sees_is_what_was_sent(name: str, subject: str, body: str) -> None:
    """Read back by the email package (the reference reader), every value arrives intact."""
    data = to_bytes(outgoing(to_name=name, subject=subject, text=body, html=body))
    msg = parse(data)
    assert msg["Bcc"] is None and msg["Cc"] is None
    assert msg["Subject"] == clean_header(subject, limit=250)
    to = msg["To"].addresses
    assert [a.addr_spec for a in to] == ["anna@fk.example"]
    # The name as RFC 2047 readers see it: white space between two encoded-words is not part
    # of the text (§6.2). Python's address parser keeps it, so the name is decoded here.
    raw = message_from_bytes(data, policy=policy.compat32)["To"]
    phrase = raw.rpartition("<")[0].strip()
    if phrase.startswith('"'):  # a quoted string
        shown = re.sub(r"\\(.)", r"\1", phrase[1:-1])
    else:
        shown = str(make_header(decode_header(phrase))) if phrase else ""
    assert shown == clean_header(name)
    # The reader keeps the wire's CRLF line ends; the text is the same line for line.
    text, html = (p.get_content().replace("\r\n", "\n") for p in msg.iter_parts())
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    expected = expected if expected.endswith("\n") else expected + "\n"
    assert text == html == expected


def test_an_address_that_cannot_be_written_is_refused() -> None:
    with pytest.raises(ValueError, match="SMTPUTF8"):
        to_bytes(outgoing(to_email="åsa@fk.example"))
    with pytest.raises(ValueError, match="not an email address"):
        to_bytes(outgoing(to_email="anna@fk.example>\r\nBcc: x@y"))


def test_a_unicode_domain_is_written_as_its_ascii_form() -> None:
    msg = parse(to_bytes(outgoing(to_email="anna@försäkringskassan.example")))
    domain = msg["To"].addresses[0].domain
    assert domain.isascii() and domain.startswith("xn--")
    assert domain.encode("ascii").decode("idna") == "försäkringskassan.example"


@settings(max_examples=500, deadline=None)
@given(value=st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_the_quick_path_for_plain_ascii_cleans_as_the_full_rules_do(value: str) -> None:
    import unicodedata

    full = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in value
    )
    while "=?" in full:
        full = full.replace("=?", "")
    full = " ".join(full.split())
    assert clean_header(value, limit=40) == full[:40].rstrip()


def test_a_participants_message_has_one_click_unsubscribe_list_id_and_language() -> None:
    url = "https://samverkan.coord.example/u/" + "A" * 43
    msg = parse(
        to_bytes(
            outgoing(
                category="reminder",
                language="sv",
                cycle_id=3,
                cycle_name="Vår 2027",
                unsubscribe_url=url,
            )
        )
    )
    assert msg["List-Unsubscribe"] == f"<{url}>, <mailto:s@coord.example?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Vår 2027 <cycle-3.samverkan.coord.example>"
    assert msg["Content-Language"] == "sv"
    plain = parse(to_bytes(outgoing(language="en", cycle_id=3, cycle_name="Spring")))
    assert plain["List-Unsubscribe"] is None and plain["List-Unsubscribe-Post"] is None
    assert plain["List-Id"] == "Spring <cycle-3.samverkan.coord.example>"


def test_a_cycle_name_cannot_inject_headers_through_list_id() -> None:
    data = to_bytes(outgoing(cycle_id=1, cycle_name=ATTACK))
    msg = parse(data)
    assert msg["Bcc"] is None and b"\nBcc:" not in data
    assert str(msg["List-Id"]).endswith("<cycle-1.samverkan.coord.example>")


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "https://x.example/u/a b", "https://x.example/u/a>\r\nBcc: e"]
)
def test_an_unsubscribe_link_that_is_not_a_plain_web_address_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a web address"):
        to_bytes(outgoing(unsubscribe_url=url))
