"""The Network pages (coordinators only): the participants with filters, the CSV import (all
rows or none; a rejected file is shown row by row beside its problems), adding and changing
one person with the checks of a row of the file, a person's data as JSON, and erasure.

They call what ``samverkan participants …`` calls: list_network, import_csv,
add_participant, edit_participant (flows/people/participants.py), export_person and
erase_person (flows/people/privacy.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from flows.people.participants import (
    COLUMNS,
    Listed,
    add_participant,
    csv_records,
    edit_participant,
    get_participant,
    import_csv,
    list_network,
)
from flows.people.privacy import erase_person, export_person
from flows.web.workspace.core import (
    LANGUAGE_NAMES,
    LANGUAGES,
    MAX_ID,
    Coordinator,
    Who,
    checked_form,
    engine_of,
    field,
    number,
    page,
    url,
)
from store.errors import ImportRejected, InvalidInput, NotFound, PersonRejected
from store.models import Role

router = APIRouter()

# The largest file the import takes: far more than a network's participants (the 50,000
# rows of python -m benchmarks import are about 4 MB).
LIMIT = 5 * 1024 * 1024
LIMIT_TEXT = "5 MB"
# A rejected file longer than this is shown by its bad rows only.
SHOWN_ROWS = 500

ROLES = [(r.value, r.value.replace("_", " ")) for r in Role]
ROLE_NAMES = dict(ROLES)


def sentence(text: str) -> str:
    """A message of the application as a sentence on a page."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def sentences(problems: list[str]) -> str:
    """A row's problems ("reason; reason" each, as parse_csv joins them) as sentences."""
    return " ".join(sentence(part) for text in problems for part in text.split("; "))


def _person(request: Request, participant_id: int) -> Listed:
    if not 0 < participant_id <= MAX_ID:  # no such row (and PostgreSQL refuses the number)
        raise HTTPException(404)
    try:
        return get_participant(engine_of(request), participant_id)
    except NotFound:
        raise HTTPException(404) from None


def _number(query: Mapping[str, str], name: str) -> int:
    value = query.get(name, "")
    return number(value, 0) or 0


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def done_message(request: Request) -> str | None:
    """What the last change did, from the address it redirected to (only numbers are taken
    from there; a name is read from the store)."""
    query = request.query_params
    done = query.get("done")
    if done == "imported":
        return (
            f"Imported {_number(query, 'new')} new and updated "
            f"{_plural(_number(query, 'updated'), 'participant')}."
        )
    if done == "erased":
        text = (
            "The person was erased: "
            f"{_plural(_number(query, 'answers'), 'written answer')} and "
            f"{_plural(_number(query, 'messages'), 'message')} cleared, "
            f"{_plural(_number(query, 'dropped'), 'unsent message')} dropped."
        )
        if query.get("log") == "0":
            text += (
                " Another process is reading the database, so its write-ahead log (which still"
                " holds the old rows) is emptied only when that process stops or writes."
            )
        return text
    if done in ("added", "saved", "unchanged"):
        try:
            name = get_participant(engine_of(request), _number(query, "id")).name
        except NotFound:
            return None
        return {
            "added": f"Added {name} to the network.",
            "saved": f"Saved the changes to {name}.",
            "unchanged": f"Nothing was changed for {name}.",
        }[done]
    return None


def count_text(shown: list[Listed], total: int, filtered: bool) -> str:
    """What the list counts: '13 participants, 2 of them no longer get mail (…)'."""
    n = len(shown)
    if filtered:
        if not n:
            return f"No participant matches these filters ({total} in all)."
        head = f"{n} of {total} participants match these filters"
    else:
        head = _plural(n, "participant")
    unsubscribed = sum(p.unsubscribed for p in shown)
    erased = sum(p.erased for p in shown)
    bounced = sum(p.mail == "bounced" for p in shown)
    gone = unsubscribed + erased + bounced
    why = ", ".join(
        part
        for part in (
            f"{unsubscribed} unsubscribed" if unsubscribed else "",
            f"{bounced} with an address that bounced" if bounced else "",
            f"{erased} erased" if erased else "",
        )
        if part
    )
    if n == 1:
        return head + (f", who no longer gets mail ({why})." if gone else ", who gets mail.")
    if not gone:
        return head + ", all of them get mail."
    verb = "gets" if gone == 1 else "get"
    return f"{head}, {gone} of them no longer {verb} mail ({why})."


@router.get("/network", response_class=HTMLResponse)
def network(
    request: Request,
    who: Coordinator,
    organisation: str = "",
    role: str = "",
    language: str = "",
) -> HTMLResponse:
    everyone = list_network(engine_of(request))
    shown = [
        p
        for p in everyone
        if (not organisation or p.organisation == organisation)
        and (not role or p.role == role)
        and (not language or p.language == language)
    ]
    filtered = bool(organisation or role or language)
    return page(
        request,
        who,
        "network.html",
        title="Network",
        section="network",
        people=shown,
        total=len(everyone),
        count=count_text(shown, len(everyone), filtered) if everyone else "",
        filtered=filtered,
        chosen={"organisation": organisation, "role": role, "language": language},
        organisations=sorted({p.organisation for p in everyone if not p.erased}),
        roles=ROLES,
        languages=LANGUAGES,
        role_names=ROLE_NAMES,
        language_names=LANGUAGE_NAMES,
        done=done_message(request),
    )


# The import


def import_page(request: Request, who: Who, *, status: int = 200, **context: Any) -> HTMLResponse:
    context = {"error": None, "rejected": None, **context}
    return page(
        request,
        who,
        "network_import.html",
        status=status,
        title="Import participants",
        section="network",
        columns=COLUMNS,
        roles=ROLES,
        limit=LIMIT_TEXT,
        **context,
    )


@router.get("/network/import", response_class=HTMLResponse)
def import_form(request: Request, who: Coordinator) -> HTMLResponse:
    return import_page(request, who)


def file_name(given: str) -> str:
    """The uploaded file's own name (no folders), short and on one line."""
    name = PurePosixPath(given.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())[:120]
    return name or "the file"


LINE = re.compile(r"line (\d+): (.*)", re.DOTALL)


@dataclass
class FileRow:
    """A record of an uploaded file as the import page shows it."""

    line: int
    cells: list[str]
    problem: str


def rejected_view(data: bytes, problems: list[str]) -> dict[str, Any]:
    """The rows of a rejected file, each with its problem, and a summary."""
    by_line: dict[int, list[str]] = {}
    other: list[str] = []
    for problem in problems:
        match = LINE.fullmatch(problem)
        if match:
            by_line.setdefault(int(match.group(1)), []).append(match.group(2))
        else:
            other.append(problem)
    header, records = csv_records(data)
    rows = [FileRow(line, cells, sentences(by_line.get(line, []))) for line, cells in records]
    # A record the CSV reader could not read (an unclosed quote) has no cells to show.
    seen = {line for line, _ in records}
    rows += [
        FileRow(line, [], sentences(texts)) for line, texts in by_line.items() if line not in seen
    ]
    rows.sort(key=lambda r: r.line)
    bad = sum(1 for r in rows if r.problem)
    total = len(rows)
    only_bad = total > SHOWN_ROWS
    width = max([len(header), *(len(r.cells) for r in rows)])
    headings = header + ["(extra cell)"] * (width - len(header))
    for r in rows:
        r.cells += [""] * (width - len(r.cells))
    verb = "has errors" if bad == 1 else "have errors"
    return {
        "summary": f"{bad} of {_plural(total, 'row')} {verb}; nothing was imported. "
        "Fix them and upload the file again.",
        "headings": headings,
        "rows": [r for r in rows if r.problem] if only_bad else rows,
        "only_bad": only_bad,
        "total": total,
        "other": other,
    }


@router.post("/network/import", response_model=None)
async def import_upload(request: Request, who: Coordinator) -> Response:
    too_large = (
        f"The file is larger than {LIMIT_TEXT}. Split it into smaller files and import "
        "them one after the other."
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > LIMIT + 64 * 1024:  # the file and the form around it
        return import_page(request, who, status=413, error=too_large)
    form = await checked_form(request, who, files=True)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return import_page(request, who, status=422, error="Choose a CSV file to upload.")
    data = await upload.read(LIMIT + 1)
    if len(data) > LIMIT:
        return import_page(request, who, status=413, error=too_large)
    source = file_name(upload.filename)
    try:
        result = await run_in_threadpool(import_csv, engine_of(request), data, source=source)
    except ImportRejected as exc:
        view = rejected_view(data, exc.problems)
        return import_page(request, who, status=422, rejected=view, source=source)
    except InvalidInput as exc:
        return import_page(
            request, who, status=422, error=f"Nothing was imported: {sentence(str(exc))}"
        )
    return RedirectResponse(
        url("/network", done="imported", new=result.created, updated=result.updated),
        status_code=303,
    )


# One person


FIELDS = ("name", "email", "organisation", "role", "language")


def person_page(
    request: Request,
    who: Who,
    *,
    person: Listed | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    everyone = list_network(engine_of(request))
    return page(
        request,
        who,
        "network_person.html",
        status=status,
        title=f"Edit {person.name}" if person else "Add a person",
        section="network",
        person=person,
        values=values,
        errors={k: sentence(v) for k, v in (errors or {}).items()},
        organisations=sorted({p.organisation for p in everyone if not p.erased}),
        roles=ROLES,
        languages=LANGUAGES,
    )


def _values(person: Listed) -> dict[str, str]:
    return {k: str(getattr(person, k)) for k in FIELDS}


@router.get("/network/add", response_class=HTMLResponse)
def add_form(request: Request, who: Coordinator) -> HTMLResponse:
    values = dict.fromkeys(FIELDS, "") | {"language": "sv"}
    return person_page(request, who, person=None, values=values)


@router.post("/network/add", response_model=None)
async def add(request: Request, who: Coordinator) -> Response:
    form = await checked_form(request, who)
    values = {k: field(form, k) for k in FIELDS}
    try:
        pid = await run_in_threadpool(lambda: add_participant(engine_of(request), **values))
    except PersonRejected as exc:
        return person_page(
            request, who, person=None, values=values, errors=exc.problems, status=422
        )
    return RedirectResponse(url("/network", done="added", id=pid), status_code=303)


@router.get("/network/{participant_id:int}/edit", response_class=HTMLResponse)
def edit_form(request: Request, who: Coordinator, participant_id: int) -> HTMLResponse:
    person = _person(request, participant_id)
    return person_page(request, who, person=person, values=_values(person))


@router.post("/network/{participant_id:int}/edit", response_model=None)
async def edit(request: Request, who: Coordinator, participant_id: int) -> Response:
    form = await checked_form(request, who)
    person = await run_in_threadpool(_person, request, participant_id)
    values = {k: field(form, k) for k in FIELDS}
    try:
        changed = await run_in_threadpool(
            lambda: edit_participant(engine_of(request), participant_id, **values)
        )
    except NotFound:
        raise HTTPException(404) from None
    except PersonRejected as exc:
        return person_page(
            request, who, person=person, values=values, errors=exc.problems, status=422
        )
    done = "saved" if changed else "unchanged"
    return RedirectResponse(url("/network", done=done, id=participant_id), status_code=303)


# Access and erasure


@router.get("/network/{participant_id:int}/export", response_model=None)
def export(request: Request, who: Coordinator, participant_id: int) -> Response:
    person = _person(request, participant_id)
    data = export_person(engine_of(request), email=person.email)
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2) + "\n",
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="participant-{participant_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/network/{participant_id:int}/erase", response_class=HTMLResponse)
def erase_form(request: Request, who: Coordinator, participant_id: int) -> HTMLResponse:
    person = _person(request, participant_id)
    return page(
        request,
        who,
        "network_erase.html",
        title=f"Erase {person.name}",
        section="network",
        person=person,
    )


@router.post("/network/{participant_id:int}/erase", response_model=None)
async def erase(request: Request, who: Coordinator, participant_id: int) -> Response:
    form = await checked_form(request, who)
    person = await run_in_threadpool(_person, request, participant_id)
    reason = field(form, "reason") or None
    try:
        done = await run_in_threadpool(
            lambda: erase_person(engine_of(request), email=person.email, reason=reason)
        )
    except NotFound:
        raise HTTPException(404) from None
    return RedirectResponse(
        url(
            "/network",
            done="erased",
            answers=done["written_answers"],
            messages=done["messages"],
            dropped=done["dropped"],
            log=int(bool(done["log_emptied"])),
        ),
        status_code=303,
    )
