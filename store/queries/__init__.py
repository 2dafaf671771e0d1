"""Data access as keyword-only functions that take a session: every query of samverkan.

One module per thing asked about; every function is re-exported here, so callers write
``from store import queries`` and ``queries.get_cycle(session, cycle_id=...)``. A function
runs in the caller's transaction: it neither commits nor rolls back.
"""

from store.queries.answers import answers_to_stage, respondents, written_answers
from store.queries.audit import audit, audit_log
from store.queries.cycles import (
    active_member_counts,
    bump_plan_version,
    due_cycle_ids,
    finished_cycle_ids,
    get_cycle,
    list_cycles,
    lock_running_cycle,
    members,
)
from store.queries.erasure import (
    answers_by,
    audit_entries_naming,
    clear_written_answers,
    count_messages_to_key,
    cycles_joined,
    delete_access_tokens,
    drop_messages_to,
    every_audit_entry,
    every_cycle,
    every_meeting,
    every_stage,
    meeting_answers_by,
    messages_that_may_mention,
    messages_to,
    written_answers_by,
)
from store.queries.meetings import (
    insert_attendees,
    invited_among,
    meeting_by_uid,
    meeting_of,
    partstats,
)
from store.queries.messages import (
    drop_stage_messages,
    drop_waiting_messages_of,
    insert_messages,
    message_counts,
    messages_of_stage,
    queue_drafts,
    ready_messages,
    undelivered,
)
from store.queries.people import (
    Member,
    clear_consent,
    find_participant,
    get_or_create_organisation,
    list_participants,
)
from store.queries.reporting import (
    cycles_not_cancelled,
    people_asked,
    people_who_answered,
    scale_histograms,
)
from store.queries.stages import claim_stage, cycle_id_of_stage, get_stage, stages_of
from store.queries.tokens import access_token, insert_access_tokens, participants_with_token

__all__ = [
    "Member",
    "access_token",
    "active_member_counts",
    "answers_by",
    "answers_to_stage",
    "audit",
    "audit_entries_naming",
    "audit_log",
    "bump_plan_version",
    "claim_stage",
    "clear_consent",
    "clear_written_answers",
    "count_messages_to_key",
    "cycle_id_of_stage",
    "cycles_joined",
    "cycles_not_cancelled",
    "delete_access_tokens",
    "drop_messages_to",
    "drop_stage_messages",
    "drop_waiting_messages_of",
    "due_cycle_ids",
    "every_audit_entry",
    "every_cycle",
    "every_meeting",
    "every_stage",
    "find_participant",
    "finished_cycle_ids",
    "get_cycle",
    "get_or_create_organisation",
    "get_stage",
    "insert_access_tokens",
    "insert_attendees",
    "insert_messages",
    "invited_among",
    "list_cycles",
    "list_participants",
    "lock_running_cycle",
    "meeting_answers_by",
    "meeting_by_uid",
    "meeting_of",
    "members",
    "message_counts",
    "messages_of_stage",
    "messages_that_may_mention",
    "messages_to",
    "participants_with_token",
    "partstats",
    "people_asked",
    "people_who_answered",
    "queue_drafts",
    "ready_messages",
    "respondents",
    "scale_histograms",
    "stages_of",
    "undelivered",
    "written_answers",
    "written_answers_by",
]
