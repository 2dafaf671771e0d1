"""Data access as keyword-only functions that take a session: every query of samverkan.

One module per thing asked about; every function is re-exported here, so callers write
``from store import queries`` and ``queries.get_cycle(session, cycle_id=...)``. A function
runs in the caller's transaction: it neither commits nor rolls back.
"""

from store.queries.answers import respondents
from store.queries.audit import audit, audit_log
from store.queries.cycles import (
    active_member_counts,
    due_cycle_ids,
    finished_cycle_ids,
    get_cycle,
    list_cycles,
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
from store.queries.meetings import meeting_of, partstats
from store.queries.messages import message_counts, ready_messages
from store.queries.people import (
    Member,
    find_participant,
    get_or_create_organisation,
    list_participants,
)
from store.queries.stages import get_stage, stages_of

__all__ = [
    "Member",
    "active_member_counts",
    "answers_by",
    "audit",
    "audit_entries_naming",
    "audit_log",
    "clear_written_answers",
    "count_messages_to_key",
    "cycles_joined",
    "delete_access_tokens",
    "drop_messages_to",
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
    "list_cycles",
    "list_participants",
    "meeting_answers_by",
    "meeting_of",
    "members",
    "message_counts",
    "messages_that_may_mention",
    "messages_to",
    "partstats",
    "ready_messages",
    "respondents",
    "stages_of",
    "written_answers_by",
]
