"""Every workspace route, tried as every role and as nobody: anonymous requests go to the
login page, a wrong role gets 403, a POST without this session's CSRF token changes nothing,
and names that are HTML render as text on every page.

The routes are read from the app itself, so a page added later is tried too; the table
below says who may use each, and a route it does not know fails the test until someone
decides."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlmodel import SQLModel
from starlette.routing import Mount

from tests.conftest import launch_learning_cycle, tick
from tests.workspace import COORDINATOR, SIGNER, VIEWER, Client, csrf_of

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)

PUBLIC = [r"/login", r"/disabled", r"/static/workspace\.css"]
# Signed in with any role. "/" is everyone's start page: the overview for a coordinator,
# and for the others a redirect to the pages of their role.
ANYONE = [
    r"/",
    r"/account",
    r"/logout",
    r"/reports",
    r"/cycles/\{cycle_id\}/report(\.\{fmt\})?",
    r"/cycles/\{cycle_id\}/indicators(\.\{fmt\})?",
    # A viewer reads a stage's sign-off (a signer of an organisation it names, too).
    r"/cycles/\{cycle_id\}/stages/\{key\}/signoff",
]
SIGNERS = [
    r"/drafts",
    r"/cycles/\{cycle_id\}/stages/\{key\}/drafts",
    # Signing and asking for a change; the coordinator answers in the thread.
    r"/cycles/\{cycle_id\}/stages/\{key\}/signoff/(sign|change)",
]
ROLES = {"coordinator": COORDINATOR, "signer": SIGNER, "viewer": VIEWER}


def who_may(path: str) -> set[str]:
    path = re.sub(r":\w+\}", "}", path)  # "{cycle_id:int}" -> "{cycle_id}"

    def any_of(patterns: list[str]) -> bool:
        return any(re.fullmatch(p, path) for p in patterns)

    if any_of(PUBLIC):
        return {"anonymous", *ROLES}
    if any_of(ANYONE):
        return set(ROLES)
    if any_of(SIGNERS):
        return {"coordinator", "signer"}
    return {"coordinator"}  # everything else: the coordinator does everything


def workspace_routes(app: Any) -> list[tuple[str, str]]:
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/workspace")
    found = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # include_router, unexpanded
            if included is not None:
                walk(included.routes, prefix + route.include_context.prefix)
                continue
            for method in sorted(getattr(route, "methods", None) or []):
                if method in ("GET", "POST"):
                    found.append((method, prefix + route.path))

    walk(mount.app.routes, "")
    return found


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, but the sessions' last-seen times and the login throttle
    (a request may touch those without changing anything anyone asked for)."""
    skip = {"web_session", "login_failure", "alembic_version"}
    with engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
            for t in SQLModel.metadata.sorted_tables
            if t.name not in skip
        }


def launched(engine: Engine, settings: Any) -> dict[str, str]:
    """Launch the learning cycle and draft its invitation; the values that fill the routes'
    parameters ({cycle_id}, {key}, {participant_id}, {name}, {template})."""
    from sqlmodel import Session

    from store.models import Participant

    cycle_id = launch_learning_cycle(engine, settings, START, WORKSHOP, approve=False)
    tick(START)
    with Session(engine) as s:
        person = s.exec(select(Participant)).scalars().first()
        assert person is not None
    return {
        "cycle_id": str(cycle_id),
        "key": "invitation",
        "participant_id": str(person.id),
        "name": "learning-cycle",
        "template": "learning-cycle",
    }


@pytest.fixture
def site(network, settings, accounts) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from flows.web.app import create_app

    values = launched(network, settings)
    yield {"app": create_app(settings, network), "values": values, "engine": network}


def fill(path: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "fmt":  # a download: report.md / report.html, indicators.csv / .json
            return "csv" if "/indicators" in path else "md"
        assert name in values, f"the test has no value for {{{name}}} in {path}: add one"
        return values[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", one, path)


def test_every_route_refuses_nobody_and_the_wrong_role(site) -> None:  # type: ignore[no-untyped-def]
    app, engine = site["app"], site["engine"]
    routes = workspace_routes(app)
    assert len(routes) >= 8
    clients = {"anonymous": Client(app)}
    for role, email in ROLES.items():
        clients[role] = Client(app)
        assert clients[role].login(email).status_code == 303
    tokens = {
        role: csrf_of(c.get("/workspace/account").text)
        for role, c in clients.items()
        if role != "anonymous"
    }
    before = dump(engine)
    wrong = []
    for method, path in routes:
        address = "/workspace" + fill(path, site["values"])
        allowed = who_may(path)
        for role, client in clients.items():
            if role in allowed:
                continue
            data = {"csrf": tokens[role]} if role in tokens else {}
            got = client.request(method, address, data=data if method == "POST" else None)
            if role == "anonymous":
                ok = got.status_code == 303 and got.headers["location"].startswith(
                    "/workspace/login"
                )
            else:
                ok = got.status_code == 403 and "not for your role" in got.text
            if not ok:
                wrong.append((role, method, path, got.status_code))
    assert wrong == []
    assert dump(engine) == before, "a refused request changed the store"


def test_a_post_without_the_sessions_token_changes_nothing(site) -> None:  # type: ignore[no-untyped-def]
    app, engine = site["app"], site["engine"]
    posts = [p for m, p in workspace_routes(app) if m == "POST" and p != "/login"]
    assert len(posts) >= 3
    # Signing in is audited: every session is opened before the store is looked at.
    sessions = {}
    for role, email in ROLES.items():
        mine, other = Client(app), Client(app)
        mine.login(email)
        other.login(email)
        sessions[role] = (mine, other)
    before = dump(engine)
    wrong = []
    for path in posts:
        role = next(r for r in ("coordinator", "signer", "viewer") if r in who_may(path))
        client, other = sessions[role]
        address = "/workspace" + fill(path, site["values"])
        for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
            got = client.post(address, data=data)
            if got.status_code != 403 or "could not be taken" not in got.text:
                wrong.append((path, data, got.status_code))
        # Another session's token is no good either.
        got = client.post(address, data={"csrf": csrf_of(other.get("/workspace/account").text)})
        if got.status_code != 403:
            wrong.append((path, "another session's token", got.status_code))
        # Nor is a JSON body that carries the right token.
        token = csrf_of(client.get("/workspace/account").text)
        got = client.post(address, json={"csrf": token})
        if got.status_code != 403:
            wrong.append((path, "json", got.status_code))
    assert wrong == []
    assert dump(engine) == before, "a POST without a valid token changed the store"


HOSTILE = [
    ('<script>alert("name")</script>', "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;"),
    ('"><img src=x onerror=alert(1)>', "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"),
]


def test_hostile_names_render_as_text_on_every_page(  # type: ignore[no-untyped-def]
    engine, settings, accounts, tmp_path: Path
) -> None:
    import csv as csv_module

    from flows.people.participants import import_participants
    from flows.web.app import create_app

    csv = tmp_path / "hostile.csv"
    with csv.open("w", encoding="utf-8", newline="") as f:
        writer = csv_module.writer(f)
        writer.writerow(["name", "email", "organisation", "role", "language"])
        writer.writerow([HOSTILE[0][0], "a@kommun.example.org", "<b>Org</b>", "professional", "sv"])
        writer.writerow(
            [HOSTILE[1][0], "b@kommun.example.org", "Försäkringskassan", "manager", "en"]
        )
    import_participants(engine, csv)
    values = launched(engine, settings)
    app = create_app(settings, engine)
    client = Client(app)
    client.login(COORDINATOR)
    pages = [p for m, p in workspace_routes(app) if m == "GET"]
    shown_names = 0
    for path in sorted(set(pages)):
        got = client.get("/workspace" + fill(path, values))
        if not got.headers.get("content-type", "").startswith("text/html"):
            continue  # a download (JSON, CSV, Markdown) is data, not a page
        text = got.text
        assert "<script>alert" not in text, path
        assert "<img src=x" not in text, path
        assert "<b>Org</b>" not in text, path
        shown_names += sum(escaped in text for _, escaped in HOSTILE)
    assert shown_names >= 2, "no page showed the names at all: the test proves nothing"


def test_pages_are_not_cached_and_not_framed(web) -> None:  # type: ignore[no-untyped-def]
    page = web(COORDINATOR).get("/workspace/account")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("bad", ["99999999999", "0", "abc", "-3"])
def test_an_id_that_names_nothing_is_the_not_found_page(site, bad: str) -> None:  # type: ignore[no-untyped-def]
    # On PostgreSQL a number beyond 32 bits would fail in the database: never a traceback.
    client = Client(site["app"])
    client.login(COORDINATOR)
    wrong = []
    for method, path in workspace_routes(site["app"]):
        if method != "GET" or not re.search(r"\{(cycle_id|participant_id)", path):
            continue
        values = {**site["values"], "cycle_id": bad, "participant_id": bad}
        got = client.get("/workspace" + fill(path, values))
        if got.status_code != 404 or "Not found" not in got.text:
            wrong.append((path, got.status_code))
    assert wrong == []


@pytest.mark.parametrize("value", ["²", "9" * 5000, "-1", "1e3"])
def test_numbers_in_addresses_and_forms_that_are_not_numbers_are_no_crash(site, value: str) -> None:  # type: ignore[no-untyped-def]
    client = Client(site["app"])
    client.login(COORDINATOR)
    cycle = site["values"]["cycle_id"]
    for path, query in (
        (f"/workspace/cycles/{cycle}/outbox", {"page": value}),
        (f"/workspace/cycles/{cycle}/outbox", {"resent": value}),
        ("/workspace/network", {"done": "imported", "new": value, "updated": value}),
    ):
        assert client.get(path, params=query).status_code == 200, (path, query)
    confirm = client.submit(
        f"/workspace/cycles/{cycle}/change?op=pause",
        f"/workspace/cycles/{cycle}/change/confirm",
        data={"op": "pause", "expect_version": value},
    )
    assert confirm.status_code == 422 and "no plan version" in confirm.text
