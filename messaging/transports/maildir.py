"""Maildir delivery: one Maildir per recipient under the root, readable by any mail client."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path
from types import TracebackType

from messaging.transports.base import Envelope, PermanentFailure, Receipt, TemporaryFailure

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def folder_name(recipient: str) -> str:
    """The folder of one recipient: the lower-cased address, with nothing a path could abuse."""
    name = _UNSAFE.sub("_", recipient.lower())
    return name.lstrip(".") or "_"


_NAME = re.compile(r"^(\d+)\.M(\d+)P\d+Q(\d+)\.")


def delivered(folder: Path) -> list[Path]:
    """The messages of one Maildir's new/ folder in the order they were delivered.

    Maildir names start with seconds, then M<microseconds> unpadded, so a plain sort by name
    misorders two messages delivered within the same second.
    """

    def order(path: Path) -> tuple[int, int, int, str]:
        m = _NAME.match(path.name)
        if not m:
            return (2**62, 0, 0, path.name)
        return (int(m.group(1)), int(m.group(2)), int(m.group(3)), path.name)

    new = Path(folder) / "new"
    return sorted(new.iterdir(), key=order) if new.is_dir() else []


class MaildirTransport:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._boxes: dict[str, mailbox.Maildir] = {}

    async def __aenter__(self) -> MaildirTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._boxes.clear()

    async def send(self, envelope: Envelope) -> Receipt:
        name = folder_name(envelope.recipient)
        try:
            box = self._boxes.get(name)
            if box is None:
                self.root.mkdir(parents=True, exist_ok=True)
                box = mailbox.Maildir(self.root / name, create=True)
                self._boxes[name] = box
            key = box.add(envelope.data)
        except PermissionError as exc:
            raise PermanentFailure(f"cannot write to {self.root / name}: {exc.strerror}") from None
        except OSError as exc:
            raise TemporaryFailure(f"cannot write to {self.root / name}: {exc.strerror}") from None
        return Receipt(reply=f"stored {name}/new/{key}")
