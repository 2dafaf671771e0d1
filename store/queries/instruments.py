"""The wording of instruments' questions as cycles first asked them (fingerprints)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import Session

from store.errors import InvalidInput
from store.models import InstrumentQuestion


def record_wording(
    session: Session,
    *,
    instrument: str,
    version: int,
    fingerprints: Mapping[str, str],
    cycle_id: int | None,
) -> None:
    """Remember each question's fingerprint the first time a cycle asks it; refuse one that
    differs from what an earlier cycle asked under the same instrument version."""
    for qid, fp in sorted(fingerprints.items()):
        known = session.get(InstrumentQuestion, (instrument, version, qid))
        if known is None:
            session.add(
                InstrumentQuestion(
                    instrument=instrument,
                    version=version,
                    question_id=qid,
                    fingerprint=fp,
                    first_cycle_id=cycle_id,
                )
            )
        elif known.fingerprint != fp:
            cycle = known.first_cycle_id
            first = f" (first asked in cycle {cycle})" if cycle else ""
            raise InvalidInput(
                f"instrument {instrument} version {version}: question {qid!r} is worded "
                f"differently from when it was first asked{first}; give the new wording a new "
                "version"
            )
