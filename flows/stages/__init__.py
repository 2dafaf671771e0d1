"""Stage kinds, one module each, and the Prefect task that runs a stage of that kind.

Every kind is an instance in ``KINDS`` of a class that meets ``StageKind`` (flows/stages/kind.py).

Prefect is imported only when a task is first asked for (``task_for``), so that commands that
run no flow (launch, drafts, show) stay fast: ``import prefect`` alone costs about a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine

from flows.cycles.plan import first_runnable
from flows.settings import Settings
from flows.stages import email, followup, meeting, reflection, signoff
from flows.stages.base import Recipient, StageOutcome, StageRun, write_drafts
from flows.stages.kind import StageKind
from flows.templates import LANGUAGES, ProcessTemplate
from flows.wording import NOT_THE_SIGNED_TEXT, WAITING_FOR_SIGNOFF
from store import queries
from store.db import session_scope
from store.errors import SamverkanError
from store.models import Cycle, MessageStatus, Stage, StageStatus, pk

KINDS: dict[str, StageKind] = {
    "email": email.EmailKind(),
    "meeting": meeting.MeetingKind(),
    "followup": followup.FollowupKind(),
    "reflection": reflection.ReflectionKind(),
}


CHUNK = 500  # recipients drafted and written at a time: memory does not grow with the audience


def drafts_for(run: StageRun) -> list[Any]:
    """Every draft the stage would make, for previews; nothing is recorded (``execute``
    drafts for real, streaming)."""
    run.validating = True
    kind = KINDS[run.stage.kind]
    return [kind.draft(run, r) for r in kind.recipients(run, validating=True)]


def render_every_email(run: StageRun) -> set[tuple[str, str]]:
    """Render every email the stage can send, for one recipient per language and role, so
    that a template error shows now rather than when it is sent; nothing is recorded.

    Besides the stage's own email that is a meeting's update and cancellation, sent only if
    it moves or is called off, and the coordinator's email in every language (which one is a
    setting). Returns the (template, language) of every email rendered.
    """
    run.validating = True
    kind = KINDS[run.stage.kind]
    people = list(
        {(r.language, r.role): r for r in reversed(kind.recipients(run, validating=True))}.values()
    )
    written = sorted(run.template.languages(run.stage.template or "")) or list(LANGUAGES)
    people += [
        replace(r, language=language)
        for r in people
        if r.participant_id is None
        for language in written
        if not any(p.language == language and p.role == r.role for p in people)
    ]
    for r in people:
        kind.draft(run, r)
        kind.notices(run, r)
    return set(run.rendered)


def recipient_chunks(run: StageRun, size: int = CHUNK) -> Iterator[list[Recipient]]:
    yield from KINDS[run.stage.kind].recipient_chunks(run, size)


class SignoffRefused(SamverkanError):
    """A message of the stage is not the text its organisations signed: nothing is sent."""


def _draft_and_queue(
    run: StageRun, status: MessageStatus, signed: dict[tuple[str, str], signoff.Text] | None
) -> int:
    """Draft the stage's messages ``CHUNK`` recipients at a time, each chunk written as soon
    as it is drafted, all in the caller's transaction. With ``signed`` (the signed text of
    each language and role), every message is checked against its text first."""
    kind = KINDS[run.stage.kind]
    category = kind.category(run.stage)
    kind.prepare(run)
    count = 0
    for people in recipient_chunks(run):
        kind.admit(run, people)
        drafts = [kind.draft(run, r) for r in people]
        if signed is not None:
            for d in drafts:
                text = signed.get((d.recipient.language, d.recipient.role))
                why = (
                    f"nobody signed a text for {d.recipient.language}/{d.recipient.role}"
                    if text is None
                    else signoff.differs(text, d)
                )
                if why:
                    raise SignoffRefused(NOT_THE_SIGNED_TEXT + why)
        count += write_drafts(run, drafts, category=category, status=status)
    return count


def _wait_for_signoff(
    run: StageRun,
) -> tuple[StageOutcome | None, dict[tuple[str, str], signoff.Text]]:
    """Look at the stage's sign-off (in the run's transaction): the outcome to return when it
    must wait (signatures missing), and the signed texts to check the messages against."""
    preview = replace(run, validating=True, memo={}, tokens=set(), rendered=set(), note=[])
    state = signoff.look(preview, KINDS[run.stage.kind])
    if state.complete:
        return None, state.by_group
    stage = run.stage
    note = WAITING_FOR_SIGNOFF + state.waiting_line()
    if stage.note != note:
        stage.note = note
        run.session.add(stage)
        queries.audit(
            run.session,
            cycle_id=pk(run.cycle),
            action="stage.waiting",
            stage_key=stage.key,
            detail=f"due {stage.due_at.isoformat()}, not sent: {note}",
            actor="tick",
        )
    wanted = [t for texts in state.missing.values() for t in texts]
    last = queries.last_notice(
        run.session, stage_id=pk(stage), organisation=None, kinds=["overdue"]
    )
    if last is None or last.content_hashes != signoff.hashes(wanted):
        signoff.notify(
            run.session,
            run.settings,
            run.cycle,
            stage,
            None,
            "overdue",
            wanted,
            now=run.now,
            extra=state.waiting_line(),
        )
    return StageOutcome(stage.key, stage.kind, "waiting", 0, note), state.by_group


def execute(
    engine: Engine,
    settings: Settings,
    template: ProcessTemplate,
    *,
    stage_id: int,
    now: datetime,
) -> StageOutcome | None:
    """Run one stage: draft its messages into the outbox in one transaction.

    Returns None when the stage is no longer the one to run at ``now``: another tick claimed
    it first, or the plan changed since the tick chose it (re-timed, moved, paused).
    """
    previous = ""
    try:
        with session_scope(engine) as session:
            cycle_id = queries.cycle_id_of_stage(session, stage_id=stage_id)
            # The cycle's row first, as every plan change does (flows/cycles/resequence.py): from
            # here until the drafts are written no re-sequencing can come in between, and what is
            # read below is the plan as the last change left it, not as the tick saw it.
            # Running a stage changes the plan's state too: a preview made before is stale.
            locked = queries.lock_running_cycle(session, cycle_id=cycle_id)
            stages = queries.stages_of(session, cycle_id=cycle_id)
            stage = next(s for s in stages if s.id == stage_id)
            runnable = first_runnable(((s.key, str(s.status), s.due_at) for s in stages), now)
            if not locked or runnable != stage.key:
                session.rollback()
                return None
            cycle = session.get(Cycle, cycle_id)
            assert cycle is not None
            # As stored: a failure below (also while the texts to sign are rendered) is
            # recorded only if the stage is still as this attempt found it.
            previous = found = str(stage.status)
            run = StageRun(session, settings, cycle, stage, template, now)
            signed = None
            if stage.signoff:
                waiting, signed = _wait_for_signoff(run)
                if waiting is not None:
                    return waiting
                # Looking may have withdrawn an approval given in advance (it covered other
                # texts): then the drafts wait for the coordinator. Claimed from that status,
                # in this transaction; a failure is recorded against the stored one.
                session.flush()
                found = str(stage.status)
            if not queries.claim_stage(
                session, stage_id=stage_id, expected=[found], to=StageStatus.running
            ):
                session.rollback()
                return None
            needs_approval = stage.approval_required and stage.approved_at is None
            status = MessageStatus.draft if needs_approval else MessageStatus.queued
            count = _draft_and_queue(run, status, signed)
            stage.status = StageStatus.awaiting_approval if needs_approval else StageStatus.done
            stage.ran_at = now
            if not count:
                run.note.append("no recipients")
            stage.note = "; ".join(run.notes()) or None
            session.add(stage)
            verb = "drafted for approval" if needs_approval else "queued"
            queries.audit(
                session,
                cycle_id=cycle.id,
                action=f"stage.{stage.status}",
                stage_key=stage.key,
                detail=f"{count} messages {verb}" + (f" ({stage.note})" if stage.note else ""),
                actor="tick",
            )
            return StageOutcome(stage.key, stage.kind, str(stage.status), count, stage.note or "")
    except SignoffRefused as exc:
        return _refused(engine, settings, stage_id=stage_id, now=now, why=str(exc))
    except SamverkanError as exc:
        # Nothing was written; record the failure so the coordinator sees it and the plan
        # moves on instead of retrying a broken template on every tick.
        # Only if the stage is still as this attempt found it: another tick may have run it
        # meanwhile, and its outcome must not be overwritten.
        with session_scope(engine) as session:
            failed = session.get(Stage, stage_id)
            assert failed is not None
            if not queries.claim_stage(
                session, stage_id=stage_id, expected=[previous], to=StageStatus.failed
            ):
                return None
            session.refresh(failed)
            failed.ran_at, failed.note = now, str(exc)
            session.add(failed)
            queries.audit(
                session,
                cycle_id=failed.cycle_id,
                action="stage.failed",
                stage_key=failed.key,
                detail=str(exc),
                actor="tick",
            )
            return StageOutcome(failed.key, failed.kind, "failed", 0, str(exc))


def _refused(
    engine: Engine, settings: Settings, *, stage_id: int, now: datetime, why: str
) -> StageOutcome:
    """Nothing was written: the stage stays as it was, says why, and the coordinator is told
    (once for each reason)."""
    with session_scope(engine) as session:
        stage = session.get(Stage, stage_id)
        assert stage is not None
        cycle = session.get(Cycle, stage.cycle_id)
        assert cycle is not None
        if stage.note != why:
            stage.note = why
            session.add(stage)
            queries.audit(
                session,
                cycle_id=pk(cycle),
                action="signoff.refused",
                stage_key=stage.key,
                detail=why,
                actor="tick",
            )
            signoff.notify(session, settings, cycle, stage, None, "refused", [], now=now, extra=why)
        return StageOutcome(stage.key, stage.kind, "waiting", 0, why)


# A stage whose database went away for a moment (a dropped connection, SQLite's lock taken
# too long) is tried again. That is safe: ``execute`` claims the stage in the transaction that
# writes its drafts, so a retry after a rollback finds the stage as it was, and a retry after
# a commit that was not reported finds it run and returns None.
RETRY_DELAYS: list[float] = [2, 4, 8]  # seconds, each stretched by up to half at random
RETRY_JITTER = 0.5


def _database_hiccup(task: Any, task_run: Any, state: Any) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(state.data, OperationalError)


@cache
def task_for(kind: str) -> Any:
    """The Prefect task that runs stages of ``kind``: one task run per stage (not per
    message), named ``{kind}:{stage key}``.

    Called like ``execute`` and with the stage's ``key`` (for the run's name). A stage that
    failed (its outcome's status "failed") ends as a Failed task run with the reason as its
    message and the outcome as its data, so Prefect shows the failure the coordinator sees in
    ``cycle show``; the caller takes the outcome from the state and goes on.
    """
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    if kind not in KINDS:
        raise KeyError(kind)

    def run_stage(
        engine: Engine,
        settings: Settings,
        template: ProcessTemplate,
        *,
        stage_id: int,
        now: datetime,
        key: str,
    ) -> Any:
        from prefect.states import Failed

        outcome = execute(engine, settings, template, stage_id=stage_id, now=now)
        if outcome is not None and outcome.status == "failed":
            return Failed(message=outcome.note, data=outcome)
        return outcome

    return task(
        name=f"stage-{kind}",
        cache_policy=NO_CACHE,
        persist_result=False,
        task_run_name=f"{kind}:{{key}}",
        retries=len(RETRY_DELAYS),
        retry_delay_seconds=RETRY_DELAYS,
        retry_jitter_factor=RETRY_JITTER,
        retry_condition_fn=_database_hiccup,
    )(run_stage)
