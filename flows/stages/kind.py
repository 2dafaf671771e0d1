"""What a stage kind is: the ``StageKind`` protocol, and ``Kind``, a base with its defaults.

A new kind (a survey, say) is a subclass of ``Kind`` that sets ``name`` and writes
``recipients`` and ``draft``; it overrides the other methods only if it needs them. One
instance of it goes into ``KINDS`` in ``flows/stages/__init__.py``, under its name, which is
what a stage's ``kind`` says in a process template.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from flows.stages.base import Draft, Recipient, StageRun
from store.models import Stage


@runtime_checkable
class StageKind(Protocol):
    """One kind of stage: whom it writes to and what it sends them.

    Running a stage calls, all in one transaction: ``category`` once, ``prepare`` once, then
    for each chunk of ``recipient_chunks`` first ``admit`` and then ``draft`` for everyone in
    it. A preview, and the check at launch that every email renders, call
    ``recipients(validating=True)`` and ``draft`` (the check ``notices`` too), and record
    nothing they make.

    - ``name``: the kind's name in a process template (``email``, ``meeting``, ...).
    - ``category(stage)``: the outbox category of the stage's messages (``reminder``, ...).
    - ``recipients(run, validating=...)``: everyone the stage writes to now. With
      ``validating`` it leaves out no one by the stage's ``unless`` rule, so that a check
      renders an email for every language and role the audience has.
    - ``recipient_chunks(run, size)``: the same people as ``recipients(run)``, in lists of
      at most ``size`` when the kind can read them a page at a time (memory stays flat with
      the audience), else in one list.
    - ``prepare(run)``: set up what the kind keeps in the database for the stage before any
      message is drafted (a meeting's calendar identity); may do nothing.
    - ``admit(run, people)``: record that ``people`` are about to be written to (a meeting's
      attendees), before their drafts; may do nothing.
    - ``draft(run, recipient)``: the one message to ``recipient``, rendered. It writes
      nothing: the caller writes the draft, and the links ``run`` noted for it.
    - ``notices(run, recipient)``: any other message the stage may send later (a meeting's
      update and cancellation), drafted only so that a template error shows at launch;
      may be none.
    """

    name: str

    def category(self, stage: Stage) -> str: ...

    def recipients(self, run: StageRun, *, validating: bool = False) -> list[Recipient]: ...

    def recipient_chunks(self, run: StageRun, size: int) -> Iterator[list[Recipient]]: ...

    def prepare(self, run: StageRun) -> None: ...

    def admit(self, run: StageRun, people: list[Recipient]) -> None: ...

    def draft(self, run: StageRun, recipient: Recipient) -> Draft: ...

    def notices(self, run: StageRun, recipient: Recipient) -> list[Draft]: ...


class Kind(ABC):
    """A stage kind's defaults: its messages' category is its name, its recipients come in
    one chunk, and it keeps no state and sends no notices. ``recipients`` and ``draft`` are
    the kind's own."""

    name: str

    def category(self, stage: Stage) -> str:
        return self.name

    @abstractmethod
    def recipients(self, run: StageRun, *, validating: bool = False) -> list[Recipient]: ...

    def recipient_chunks(self, run: StageRun, size: int) -> Iterator[list[Recipient]]:
        yield self.recipients(run)

    def prepare(self, run: StageRun) -> None:
        return None

    def admit(self, run: StageRun, people: list[Recipient]) -> None:
        return None

    @abstractmethod
    def draft(self, run: StageRun, recipient: Recipient) -> Draft: ...

    def notices(self, run: StageRun, recipient: Recipient) -> list[Draft]:
        return []
