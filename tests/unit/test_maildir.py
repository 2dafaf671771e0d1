"""The Maildir transport: one folder per recipient, readable by mail programs."""

from __future__ import annotations

import asyncio
import mailbox
from pathlib import Path

from messaging.transports import Envelope
from messaging.transports.maildir import MaildirTransport, delivered, folder_name


def send(root: Path, *recipients: str) -> None:
    async def go() -> None:
        async with MaildirTransport(root) as transport:
            for r in recipients:
                await transport.send(
                    Envelope("s@x.example", r, b"Subject: hi\r\n\r\nhi\r\n", "<m>")
                )

    asyncio.run(go())


def test_each_recipient_gets_a_maildir_a_mail_program_can_open(tmp_path: Path) -> None:
    send(tmp_path / "mail", "Anna@FK.example", "anna@fk.example", "per@vg.example")
    box = mailbox.Maildir(tmp_path / "mail" / "anna@fk.example", create=False)
    assert [m["Subject"] for m in box] == ["hi", "hi"]
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == [
        "anna@fk.example",
        "per@vg.example",
    ]


def test_an_address_cannot_escape_the_mail_folder(tmp_path: Path) -> None:
    assert folder_name("../../etc/x@y.example") == "_.._etc_x@y.example"
    send(tmp_path / "mail", "../../x@y.example")
    assert [p.parent.parent.parent for p in (tmp_path / "mail").glob("*/new/*")] == [
        tmp_path / "mail"
    ]


def test_maildir_order_follows_delivery_not_the_name(tmp_path: Path) -> None:
    new = tmp_path / "box" / "new"
    new.mkdir(parents=True)
    for name in [
        "1795680755.M100001P7Q2.host",
        "1795680755.M99999P7Q1.host",
        "1795680756.M5P7Q3.host",
    ]:
        (new / name).write_bytes(b"x")
    assert [p.name.split(".")[1] for p in delivered(tmp_path / "box")] == [
        "M99999P7Q1",
        "M100001P7Q2",
        "M5P7Q3",
    ]
