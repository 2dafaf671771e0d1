"""Workspace accounts and sessions, tried as an attacker would: the cookie's flags, sessions
that end, the throttle, CSRF on the login form, redirects, and the CLI that manages accounts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows.cli import app as cli
from flows.people import accounts as people
from store import queries
from store.models import Account, AuditEntry, LoginFailure, WebSession
from tests.workspace import COORDINATOR, PASSWORD, SIGNER, VIEWER, Client, csrf_of

runner = CliRunner()


def test_login_sets_a_strict_cookie_only_for_the_workspace(web, settings) -> None:  # type: ignore[no-untyped-def]
    client = web()
    done = client.login(COORDINATOR)
    assert (done.status_code, done.headers["location"]) == (303, "/workspace/")
    cookie = [c for c in done.headers.get_list("set-cookie") if c.startswith("samverkan_session=")]
    assert len(cookie) == 1
    flags = {part.strip().split("=")[0].lower() for part in cookie[0].split(";")}
    assert {"httponly", "path", "samesite"} <= flags
    assert "Path=/workspace" in cookie[0] and "SameSite=lax" in cookie[0]
    # http base URL: no Secure flag (it would never be sent back); https: Secure.
    assert "secure" not in flags
    assert client.get("/workspace/").status_code == 200


def test_the_cookie_is_secure_when_the_base_url_is_https(  # type: ignore[no-untyped-def]
    accounts, settings, monkeypatch
) -> None:
    from flows.settings import Settings
    from flows.web.app import create_app

    monkeypatch.setenv("SAMVERKAN_BASE_URL", "https://samverkan.example")
    client = Client(create_app(Settings(), accounts), base_url="https://samverkan.example")
    done = client.login(COORDINATOR)
    cookie = next(c for c in done.headers.get_list("set-cookie") if "samverkan_session=" in c)
    assert "Secure" in cookie


def test_the_participants_pages_set_no_cookie_and_get_none(web) -> None:  # type: ignore[no-untyped-def]
    client = web(COORDINATOR)
    assert client.session_cookie
    # The cookie's path keeps it away from the participants' pages (httpx honours paths).
    seen = client.get("/a/" + "x" * 40)
    assert seen.status_code == 404
    assert "set-cookie" not in seen.headers
    assert "samverkan_session" not in seen.request.headers.get("cookie", "")


def test_a_wrong_password_and_an_unknown_account_read_the_same(web) -> None:  # type: ignore[no-untyped-def]
    client = web()
    wrong = client.login(COORDINATOR, "not the password at all")
    nobody = client.login("nobody@coordination.example", "not the password at all")
    assert wrong.status_code == nobody.status_code == 401
    message = "The email address or the password is not right."
    assert message in wrong.text and message in nobody.text
    assert client.session_cookie is None


def test_logout_ends_the_session_on_the_server(web, engine) -> None:  # type: ignore[no-untyped-def]
    client = web(COORDINATOR)
    stolen = client.session_cookie
    page = client.get("/workspace/account")
    out = client.post("/workspace/logout", data={"csrf": csrf_of(page.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/workspace/login")
    # Someone who copied the cookie before the logout gets nothing with it.
    thief = web()
    thief.cookies.set("samverkan_session", stolen, path="/workspace")
    again = thief.get("/workspace/")
    assert (again.status_code, again.headers["location"]) == (
        303,
        "/workspace/login?back=/workspace/",
    )
    with Session(engine) as s:
        assert s.exec(select(WebSession)).all() == []
        actions = [(e.actor, e.action) for e in s.exec(select(AuditEntry))]
    assert actions[-2:] == [(COORDINATOR, "account.login"), (COORDINATOR, "account.logout")]


def test_a_password_change_ends_every_session_of_the_account(web, engine) -> None:  # type: ignore[no-untyped-def]
    laptop, phone = web(COORDINATOR), web(COORDINATOR)
    assert laptop.session_cookie != phone.session_cookie  # each login its own session
    new = "a new and longer passphrase"
    changed = laptop.submit(
        "/workspace/account", data={"current": PASSWORD, "new": new, "again": new}
    )
    assert (changed.status_code, changed.headers["location"]) == (
        303,
        "/workspace/login?changed=1",
    )
    for client in (laptop, phone):
        assert client.get("/workspace/").status_code == 303
    assert web().login(COORDINATOR, PASSWORD).status_code == 401
    assert web().login(COORDINATOR, new).status_code == 303
    with Session(engine) as s:
        actions = [(e.actor, e.action) for e in s.exec(select(AuditEntry))]
    assert (COORDINATOR, "account.password") in actions


def test_a_password_change_needs_the_current_one_and_a_long_new_one(web) -> None:  # type: ignore[no-untyped-def]
    client = web(VIEWER)
    wrong = client.submit(
        "/workspace/account", data={"current": "guess", "new": "x" * 20, "again": "x" * 20}
    )
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    short = client.submit(
        "/workspace/account", data={"current": PASSWORD, "new": "short", "again": "short"}
    )
    assert short.status_code == 422 and "at least 12 characters" in short.text
    assert client.get("/workspace/account").status_code == 200  # still signed in


def test_login_is_throttled_per_account_then_per_address(web, engine) -> None:  # type: ignore[no-untyped-def]
    client = web()
    for _ in range(people.PER_ACCOUNT):
        assert client.login(SIGNER, "wrong password here").status_code == 401
    # Now even the right password is not tried.
    throttled = client.login(SIGNER, PASSWORD)
    assert throttled.status_code == 429
    assert "Too many attempts" in throttled.text
    assert client.session_cookie is None
    # Another account from the same address still works, until the address is throttled too.
    assert web().login(VIEWER).status_code == 303
    for i in range(people.PER_ADDRESS - people.PER_ACCOUNT):
        client.login(f"guess{i}@coordination.example", "wrong password here")
    assert web().login(VIEWER).status_code == 429
    # The window moves on: fifteen minutes later the account can sign in again.
    with Session(engine) as s:
        for failure in s.exec(select(LoginFailure)).all():
            failure.at -= people.WINDOW + timedelta(seconds=1)
            s.add(failure)
        s.commit()
    assert web().login(SIGNER).status_code == 303


def test_the_login_form_needs_its_own_token(web, engine) -> None:  # type: ignore[no-untyped-def]
    client = web()
    form = {"email": COORDINATOR, "password": PASSWORD, "back": "/workspace/"}
    # A cross-site form (no cookie, or a token that is not the cookie's) signs nobody in.
    assert client.post("/workspace/login", data=form).status_code == 403
    client.get("/workspace/login")
    assert client.post("/workspace/login", data={**form, "csrf": "forged"}).status_code == 403
    assert client.session_cookie is None
    with Session(engine) as s:
        assert s.exec(select(WebSession)).all() == []


@pytest.mark.parametrize(
    "back",
    ["https://evil.example/", "//evil.example/workspace/", "/workspace//evil.example", "/a/x"],
)
def test_login_never_redirects_off_the_workspace(web, back: str) -> None:  # type: ignore[no-untyped-def]
    client = web()
    done = client.submit(
        "/workspace/login",
        data={"email": COORDINATOR, "password": PASSWORD, "back": back},
    )
    assert (done.status_code, done.headers["location"]) == (303, "/workspace/")


def test_after_login_the_page_asked_for_opens(web) -> None:  # type: ignore[no-untyped-def]
    client = web()
    sent = client.get("/workspace/account")
    assert sent.headers["location"] == "/workspace/login?back=/workspace/account"
    done = client.submit(
        "/workspace/login?back=/workspace/account",
        "/workspace/login",
        data={"email": VIEWER, "password": PASSWORD, "back": "/workspace/account"},
    )
    assert done.headers["location"] == "/workspace/account"


def test_an_idle_session_expires(web, engine) -> None:  # type: ignore[no-untyped-def]
    client = web(COORDINATOR)
    with Session(engine) as s:
        row = s.exec(select(WebSession)).one()
        row.seen_at -= people.IDLE + timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert client.get("/workspace/").status_code == 303
    with Session(engine) as s:
        assert s.exec(select(WebSession)).all() == []


def test_a_disabled_account_gets_a_clear_page_and_loses_its_sessions(web, engine) -> None:  # type: ignore[no-untyped-def]
    client = web(SIGNER)
    people.disable_account(engine, email=SIGNER)
    assert client.get("/workspace/account").status_code == 303
    page = web().login(SIGNER)
    assert page.status_code == 403
    assert "This account is disabled" in page.text


def test_the_last_coordinator_cannot_be_disabled(engine, accounts) -> None:  # type: ignore[no-untyped-def]
    from store.errors import StateError

    with pytest.raises(StateError, match="only coordinator"):
        people.disable_account(engine, email=COORDINATOR)


def test_passwords_are_hashed_with_rfc_9106s_parameters(engine) -> None:  # type: ignore[no-untyped-def]
    # Without the accounts fixture (which makes hashing cheap for the suite's sake).
    account = people.add_account(
        engine, email="p@coordination.example", role="viewer", password=PASSWORD
    )
    assert account.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert people._dummy().startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_stored_passwords_are_argon2id_hashes_and_sessions_only_hashes(web, engine) -> None:  # type: ignore[no-untyped-def]
    client = web(COORDINATOR)
    with Session(engine) as s:
        account = queries.account_by_email(s, email_key=COORDINATOR)
        assert account is not None
        assert account.password_hash.startswith("$argon2id$")
        assert PASSWORD not in account.password_hash
        stored = s.exec(select(WebSession)).one()
    assert client.session_cookie not in (stored.token_hash, stored.csrf)


# The command ---------------------------------------------------------------------------


def test_users_commands_add_list_disable_and_set_passwords(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n")
    added = runner.invoke(
        cli,
        [
            "users",
            "add",
            "Anna@Kommun.example.org",
            "--role",
            "coordinator",
            "--password-file",
            str(pw),
        ],
    )
    assert added.exit_code == 0, added.output
    assert "added Anna@kommun.example.org as coordinator" in added.output
    signer = runner.invoke(
        cli, ["users", "add", "lars@fk.example.org", "--role", "signer", "--no-password"]
    )
    assert signer.exit_code == 2
    assert "a signer signs for an organisation: give --org ORGANISATION" in signer.output
    signer = runner.invoke(
        cli,
        [
            "users",
            "add",
            "lars@fk.example.org",
            "--role",
            "signer",
            "--org",
            "Försäkringskassan",
            "--no-password",
        ],
    )
    assert signer.exit_code == 0
    again = runner.invoke(
        cli, ["users", "add", "anna@kommun.example.org", "--role", "viewer", "--no-password"]
    )
    assert (again.exit_code, again.output.strip()) == (
        2,
        "error: there is already an account anna@kommun.example.org",
    )
    listed = json.loads(runner.invoke(cli, ["users", "list", "--json"]).output)
    assert [(r["email"], r["role"], r["organisation"], r["state"]) for r in listed] == [
        ("Anna@kommun.example.org", "coordinator", "", "active"),
        ("lars@fk.example.org", "signer", "Försäkringskassan", "no password"),
    ]
    short = runner.invoke(
        cli, ["users", "password", "lars@fk.example.org", "--password-file", "-"], input="short\n"
    )
    assert (short.exit_code, short.output.strip()) == (
        2,
        "error: the password is too short: use at least 12 characters",
    )
    ok = runner.invoke(
        cli,
        ["users", "password", "lars@fk.example.org", "--password-file", "-"],
        input=PASSWORD + "\n",
    )
    assert ok.exit_code == 0, ok.output
    last = runner.invoke(cli, ["users", "disable", "anna@kommun.example.org"])
    assert last.exit_code == 2 and "the only coordinator left" in last.output
    done = runner.invoke(cli, ["users", "disable", "lars@fk.example.org"])
    assert done.exit_code == 0
    listed = json.loads(runner.invoke(cli, ["users", "list", "--json"]).output)
    assert [r["state"] for r in listed] == ["active", "disabled"]


def test_a_password_is_never_taken_from_the_command_line(settings) -> None:  # type: ignore[no-untyped-def]
    asked = runner.invoke(
        cli, ["users", "add", "a@b.example.org", "--role", "viewer", "--password", "hunter2hunter2"]
    )
    assert asked.exit_code == 2 and "No such option" in asked.output
    # Without a terminal and without a file there is no way to give one: said in one line.
    none = runner.invoke(cli, ["users", "password", "a@b.example.org"])
    assert none.exit_code == 2
    assert none.output.strip().startswith("error: ")


def test_accounts_with_the_same_address_in_another_case_are_one(engine) -> None:  # type: ignore[no-untyped-def]
    from store.errors import StateError

    people.add_account(engine, email="Per@Region.example.org", role="viewer")
    with pytest.raises(StateError):
        people.add_account(engine, email="per@region.example.org", role="viewer")
    with Session(engine) as s:
        assert len(s.exec(select(Account)).all()) == 1


def test_guessing_the_current_password_on_the_account_page_is_throttled(web) -> None:  # type: ignore[no-untyped-def]
    # A session left open on a shared computer must not let anyone guess its password.
    client = web(COORDINATOR)
    new = "a new and longer passphrase"
    for _ in range(people.PER_ACCOUNT):
        wrong = client.submit(
            "/workspace/account", data={"current": "guess guess guess", "new": new, "again": new}
        )
        assert wrong.status_code == 422
    stopped = client.submit(
        "/workspace/account", data={"current": PASSWORD, "new": new, "again": new}
    )
    assert stopped.status_code == 429 and "Too many attempts" in stopped.text
    assert web().login(COORDINATOR, new).status_code == 429  # unchanged, and throttled


def test_parallel_guesses_get_no_more_tries_than_one_after_another(engine, accounts) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    def guess(i: int) -> str:
        found = people.log_in(engine, email=SIGNER, password=f"guess {i} guess", address="10.0.0.9")
        return found.outcome

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(guess, range(16)))
    assert outcomes.count("refused") <= people.PER_ACCOUNT
    assert outcomes.count("throttled") >= 16 - people.PER_ACCOUNT


def test_a_refused_try_does_not_keep_the_account_closed(engine, accounts) -> None:  # type: ignore[no-untyped-def]
    for i in range(people.PER_ACCOUNT):
        assert (
            people.log_in(engine, email=VIEWER, password=f"x{i}", address="a").outcome == "refused"
        )
    for _ in range(30):  # someone keeps knocking: no more rows, so no longer a lock-out
        assert people.log_in(engine, email=VIEWER, password="x", address="b").outcome == "throttled"
    with Session(engine) as s:
        assert len(s.exec(select(LoginFailure)).all()) == people.PER_ACCOUNT


@pytest.mark.parametrize("token", ["é" * 43, "\u0000", "x" * 5000])
def test_a_token_that_is_not_ascii_is_refused_not_a_crash(web, token: str) -> None:  # type: ignore[no-untyped-def]
    anonymous = web()
    anonymous.get("/workspace/login")
    form = {"email": COORDINATOR, "password": PASSWORD, "csrf": token}
    assert anonymous.post("/workspace/login", data=form).status_code == 403
    client = web(COORDINATOR)
    assert client.post("/workspace/logout", data={"csrf": token}).status_code == 403
    assert client.get("/workspace/account").status_code == 200  # still signed in


def test_a_long_password_costs_the_same_for_every_address(engine, accounts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    real = people._verify
    monkeypatch.setattr(people, "_verify", lambda h, p: seen.append(len(p)) or real(h, p))
    long = "y" * 100_000
    people.log_in(engine, email=COORDINATOR, password=long, address="c")
    people.log_in(engine, email="nobody@coordination.example", password=long, address="c")
    assert seen == [people.LONGEST_PASSWORD, people.LONGEST_PASSWORD]
