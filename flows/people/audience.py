"""Audience filters: who a stage or a launch reaches.

Grammar: terms separated by spaces; all terms must hold; a term is ``all`` or
``FIELD=VALUE[,VALUE…]`` where any value may match. Fields: ``role``, ``org``, ``language``,
``email``. Values with spaces are quoted::

    all
    role=politician
    role=service_user,professional language=sv
    org="Region Västra Götaland"
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from messaging import i18n
from store.errors import InvalidInput
from store.models import Organisation, Participant, Role

FIELDS = ("role", "org", "language", "email")


@dataclass(frozen=True)
class Audience:
    terms: tuple[tuple[str, frozenset[str]], ...]
    text: str

    def matches(self, person: Participant, org: Organisation) -> bool:
        values = {
            "role": str(person.role),
            "org": org.name.casefold(),
            "language": str(person.language),
            "email": person.email_key,
        }
        return all(values[f] in allowed for f, allowed in self.terms)

    def select(
        self, members: Iterable[tuple[Participant, Organisation]]
    ) -> list[tuple[Participant, Organisation]]:
        return [(p, o) for p, o in members if self.matches(p, o)]


def parse_audience(text: str | None) -> Audience:
    raw = (text or "all").strip() or "all"
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise InvalidInput(f"audience {raw!r}: {exc}") from None
    terms = []
    for word in words:
        if word.lower() == "all":
            continue
        field, eq, value = word.partition("=")
        field = field.strip().lower()
        if not eq or not value.strip():
            raise InvalidInput(f"audience {raw!r}: {word!r} is not FIELD=VALUE")
        if field not in FIELDS:
            raise InvalidInput(
                f"audience {raw!r}: unknown field {field!r} (use {', '.join(FIELDS)})"
            )
        values = [v.strip() for v in value.split(",") if v.strip()]
        if field == "role":
            bad = [v for v in values if v not in Role.__members__]
            if bad:
                raise InvalidInput(f"audience {raw!r}: unknown role {bad[0]!r}")
        if field == "language":
            try:
                values = [i18n.normalise(v) for v in values]
            except ValueError as exc:
                raise InvalidInput(f"audience {raw!r}: {exc}") from None
        folded = frozenset(v.casefold() if field in {"org", "email"} else v for v in values)
        terms.append((field, folded))
    return Audience(terms=tuple(terms), text=raw)
