"""Every stage kind meets ``StageKind``, the protocol a new kind is written against."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from flows import templates
from flows.stages import KINDS
from flows.stages.base import Draft, Recipient
from flows.stages.kind import Kind, StageKind


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_registered_kind_meets_the_protocol(name: str) -> None:
    kind = KINDS[name]
    assert isinstance(kind, StageKind)
    assert isinstance(kind, Kind)
    assert kind.name == name


def test_templates_accept_exactly_the_registered_kinds() -> None:
    assert set(templates.KINDS) == set(KINDS)


class _WithoutDraft:
    """Every member of the protocol but ``draft``."""

    name = "survey"

    def category(self, stage: Any) -> str:
        return "survey"

    def recipients(self, run: Any, *, validating: bool = False) -> list[Recipient]:
        return []

    def recipient_chunks(self, run: Any, size: int) -> Iterator[list[Recipient]]:
        yield []

    def prepare(self, run: Any) -> None:
        return None

    def admit(self, run: Any, people: list[Recipient]) -> None:
        return None

    def notices(self, run: Any, recipient: Recipient) -> list[Draft]:
        return []


class _Complete(_WithoutDraft):
    def draft(self, run: Any, recipient: Recipient) -> Draft:
        raise NotImplementedError


def test_an_object_without_draft_is_no_stage_kind() -> None:
    assert isinstance(_Complete(), StageKind)
    assert not isinstance(_WithoutDraft(), StageKind)


def test_a_kind_without_draft_cannot_be_made() -> None:
    """``Kind`` gives every default but ``recipients`` and ``draft``: a subclass that leaves
    one out fails when it is made, not when its stage first runs."""

    class Survey(Kind):
        name = "survey"

        def recipients(self, run: Any, *, validating: bool = False) -> list[Recipient]:
            return []

    with pytest.raises(TypeError, match="draft"):
        Survey()  # type: ignore[abstract]


def test_the_defaults_are_one_chunk_no_state_no_notices() -> None:
    """A kind that writes only ``recipients`` and ``draft`` gets its recipients in one chunk
    (the size asked for does not split them), its name as category, and no notices."""
    people = [Recipient(i, f"P{i}", f"p{i}@example.org", "sv") for i in range(3)]

    class Survey(Kind):
        name = "survey"

        def recipients(self, run: Any, *, validating: bool = False) -> list[Recipient]:
            return people

        def draft(self, run: Any, recipient: Recipient) -> Draft:
            raise NotImplementedError

    kind, run = Survey(), cast(Any, None)  # no default reads the run
    assert isinstance(kind, StageKind)
    assert list(kind.recipient_chunks(run, 2)) == [people]
    assert kind.category(run) == "survey"
    kind.prepare(run)
    kind.admit(run, people)
    assert kind.notices(run, people[0]) == []
