"""The workspace's Network pages: the list and its filters, the CSV import (all or nothing,
bad rows shown beside the file's rows), adding and editing one person, export and erasure."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest
from sqlmodel import Session

from flows.people.participants import list_network
from flows.people.privacy import export_person
from store import queries
from store.db import session_scope
from store.errors import NotFound
from store.models import AuditEntry, Participant
from tests.conftest import EXAMPLE_CSV
from tests.workspace import COORDINATOR, SIGNER, VIEWER, Client, csrf_of

HEADER = "name,email,organisation,role,language\n"
ANNA = "anna.lindqvist@forsakringskassan.example"
SARA = "sara.ahmadi@goteborg.example"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


def text_of(html: str) -> str:
    """What a reader sees: the page without its tags, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def people(engine) -> dict[str, Participant]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return {p.email: p for p, _ in queries.list_participants(session)}


def pid(engine, email: str) -> int:  # type: ignore[no-untyped-def]
    return int(people(engine)[email].id or 0)


def audit_of(engine, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return [e for e in queries.every_audit_entry(session) if e.action == action]


def as_csv(*rows: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([HEADER.strip().split(","), *rows])
    return out.getvalue()


def upload(client: Client, body: bytes | str, name: str = "network.csv"):  # type: ignore[no-untyped-def]
    shown = client.get("/workspace/network/import")
    assert shown.status_code == 200
    data = body.encode() if isinstance(body, str) else body
    return client.post(
        "/workspace/network/import",
        data={"csrf": csrf_of(shown.text)},
        files={"file": (name, data, "text/csv")},
    )


def rows_of(html: str) -> dict[str, str]:
    """The error table of the import page: each row's text by its line number."""
    table = html.split('<table class="rows">', 1)[1].split("</table>", 1)[0]
    found = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL)[1:]:
        line = re.search(r'<th scope="row" class="n">(\d+)</th>', row)
        assert line, row
        found[line.group(1)] = text_of(row)
    return found


# The list


def test_the_list_shows_everyone_and_counts_who_no_longer_gets_mail(web, network) -> None:
    client = web(COORDINATOR)
    page = client.get("/workspace/network")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "13 participants, all of them get mail." in shown
    assert "Olena Kovalenko, MSc" in shown and ANNA in shown and "Försäkringskassan" in shown
    with session_scope(network) as session:
        queries.clear_consent(
            session, participant_id=pid(network, ANNA), at=people(network)[ANNA].updated_at
        )
    from flows.people.privacy import erase_person

    erase_person(network, email=SARA)
    shown = text_of(client.get("/workspace/network").text)
    assert "13 participants, 2 of them no longer get mail (1 unsubscribed, 1 erased)." in shown
    assert "Anna Lindqvist anna.lindqvist@forsakringskassan.example" in shown
    assert "No: unsubscribed" in shown and "No: erased" in shown
    # The erased person is a row without a name, address or links.
    assert "Sara Ahmadi" not in shown and "[erased]" not in shown and "@invalid" not in shown
    assert "Erased person removed Göteborgs Stad service user English No: erased" in shown


def test_the_filters_are_a_get_form_and_narrow_the_list(web, network) -> None:
    client = web(COORDINATOR)
    page = client.get("/workspace/network")
    form = page.text.split('<form class="filters"', 1)[1].split("</form>", 1)[0]
    assert 'method="get"' in form
    assert {"organisation", "role", "language"} <= set(
        re.findall(r'<select [^>]*name="(\w+)"', form)
    )
    for name in ("organisation", "role", "language"):
        assert f'<label for="f-{name}">' in form

    by_org = client.get("/workspace/network", params={"organisation": "Försäkringskassan"})
    shown = text_of(by_org.text)
    assert "2 of 13 participants match these filters, all of them get mail." in shown
    assert "Anna Lindqvist" in shown and "Johan Berg" in shown and "Sara Ahmadi" not in shown
    assert '<option value="Försäkringskassan" selected>' in by_org.text

    both = client.get("/workspace/network", params={"role": "manager", "language": "en"})
    shown = text_of(both.text)
    assert "2 of 13 participants match these filters" in shown
    names = re.findall(r'<th scope="row">([^<]+)</th>', both.text)
    assert names == ["Ali Hassan", "Mikael Öberg"]

    none = client.get("/workspace/network", params={"role": "politician", "language": "en"})
    assert "No participant matches these filters (13 in all)." in text_of(none.text)


def test_an_empty_network_says_how_to_start(web, engine) -> None:
    shown = text_of(web(COORDINATOR).get("/workspace/network").text)
    assert "No participants yet." in shown and "Import a CSV file" in shown


# The import


def test_a_file_with_a_bad_row_imports_nothing_and_shows_the_error_beside_it(web, engine) -> None:
    client = web(COORDINATOR)
    good = EXAMPLE_CSV.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    bad = "".join(
        [
            *lines[:3],
            "Ann Boss,ann@x.example,Kommunen,boss,sv\n",
            *lines[3:],
            "Bo,nope,Org,manager,sv\n",
        ]
    )
    rejected = upload(client, bad)
    assert rejected.status_code == 422
    shown = text_of(rejected.text)
    assert (
        "2 of 15 rows have errors; nothing was imported. Fix them and upload the file again."
        in shown
    )
    rows = rows_of(rejected.text)
    assert len(rows) == 15
    assert rows["4"] == (
        "4 Ann Boss ann@x.example Kommunen boss sv Unknown role 'boss' (use one of: "
        "service_user, professional, manager, politician, facilitator)."
    )
    assert rows["16"].startswith("16 Bo nope Org manager sv Bad email 'nope': ")
    assert rows["2"] == (
        "2 Anna Lindqvist anna.lindqvist@forsakringskassan.example Försäkringskassan "
        "professional sv OK"
    )
    assert list_network(engine) == [] and audit_of(engine, "participants.import") == []

    fixed = upload(client, good)
    assert fixed.status_code == 303
    assert fixed.headers["location"].startswith("/workspace/network?done=imported")
    listed = client.get(fixed.headers["location"])
    assert 'role="status">Imported 13 new and updated 0 participants.</p>' in listed.text
    assert len(list_network(engine)) == 13
    [entry] = audit_of(engine, "participants.import")
    assert (entry.detail, entry.actor) == ("network.csv: 13 new, 0 updated", COORDINATOR)

    again = upload(client, good)
    shown = text_of(client.get(again.headers["location"]).text)
    assert "Imported 0 new and updated 13 participants." in shown


def test_hostile_names_render_as_text_in_the_error_table_and_the_list(web, engine) -> None:
    client = web(COORDINATOR)
    body = as_csv(
        [SCRIPT, "s@x.example", IMG, "manager", "sv"], [IMG, "i@x.example", "Org", "king", "sv"]
    )
    rejected = upload(client, body)
    assert rejected.status_code == 422
    for hostile in (SCRIPT, IMG, "<img"):
        assert hostile not in rejected.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rejected.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in rejected.text
    assert SCRIPT in rows_of(rejected.text)["2"] and IMG in rows_of(rejected.text)["3"]

    done = upload(
        client,
        as_csv(
            [SCRIPT, "s@x.example", IMG, "manager", "sv"],
            [IMG, "i@x.example", "Org", "manager", "sv"],
        ),
    )
    assert done.status_code == 303
    listed = client.get("/workspace/network")
    assert SCRIPT not in listed.text and "<img" not in listed.text
    assert SCRIPT in text_of(listed.text) and IMG in text_of(listed.text)
    # In the organisation filter's options, too.
    assert f'<option value="{IMG}"' not in listed.text
    edit = client.get(f"/workspace/network/{pid(engine, 's@x.example')}/edit")
    assert SCRIPT not in edit.text and "<img" not in edit.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "Nothing was imported: Network.csv is empty"),
        (b"name,email\nA,a@x.example\n", "the header lacks organisation, role, language"),
        (
            "name,email,organisation,role,language\nÅsa,a@x.example,O,manager,sv\n".encode(
                "latin-1"
            ),
            "is not UTF-8",
        ),
        (HEADER.encode(), "has a header but no participants"),
    ],
)
def test_a_file_that_is_not_a_participants_file_gets_one_clear_message(
    web, engine, body: bytes, message: str
) -> None:
    rejected = upload(web(COORDINATOR), body)
    assert rejected.status_code == 422
    assert message in text_of(rejected.text)
    assert list_network(engine) == []


@pytest.mark.parametrize("extra", [10, 100_000], ids=["just-over", "far-over"])
def test_a_file_over_the_limit_is_refused_with_a_message(web, engine, extra: int) -> None:
    # Just over: read and measured; far over: refused by its length, before it is read.
    client = web(COORDINATOR)
    row = "Ann Ek,ann@x.example,Kommunen,manager,sv\n"
    big = HEADER + row * (5 * 1024 * 1024 // len(row) + extra)
    refused = upload(client, big)
    assert refused.status_code == 413
    assert "The file is larger than 5 MB." in text_of(refused.text)
    assert list_network(engine) == []


def test_an_upload_without_a_file_asks_for_one(web, engine) -> None:
    refused = web(COORDINATOR).submit("/workspace/network/import", files={"other": ("x", b"")})
    assert refused.status_code == 422
    assert "Choose a CSV file to upload." in refused.text


# One person

NEW = {
    "name": "Ida Ny",
    "email": "Ida.Ny@Kommun.example",
    "organisation": "Kommunen",
    "role": "professional",
    "language": "en",
}


def test_add_with_errors_keeps_what_was_typed_then_adds(web, network) -> None:
    client = web(COORDINATOR)
    typed = {**NEW, "email": "ida at kommun", "role": "boss", "name": "Ida <b>Ny</b>"}
    refused = client.submit("/workspace/network/add", data=typed)
    assert refused.status_code == 422
    assert (
        'value="ida at kommun"' in refused.text
        and 'value="Ida &lt;b&gt;Ny&lt;/b&gt;"' in refused.text
    )
    email_error = re.search(
        r'<p class="field-error" id="email-error" role="alert">([^<]+)</p>', refused.text
    )
    assert email_error and unescape(email_error.group(1)).startswith("Bad email 'ida at kommun'")
    assert 'id="role-error" role="alert">Unknown role' in refused.text
    assert 'id="name-error"' not in refused.text
    # Beside its field: right after the email input.
    assert re.search(
        r'<input type="email" id="email"[^>]*aria-describedby="email-error"[^>]*>\s*'
        r'<p class="field-error" id="email-error"',
        refused.text,
    )
    assert len(list_network(network)) == 13

    taken = client.submit("/workspace/network/add", data={**NEW, "email": ANNA.upper()})
    assert taken.status_code == 422
    assert f"Another participant (Anna Lindqvist) has the address {ANNA}." in unescape(taken.text)

    added = client.submit("/workspace/network/add", data=NEW)
    assert added.status_code == 303
    shown = text_of(client.get(added.headers["location"]).text)
    assert "Added Ida Ny to the network." in shown
    ida = people(network)["Ida.Ny@kommun.example"]
    assert (ida.name, str(ida.role), str(ida.language), ida.consent) == (
        "Ida Ny",
        "professional",
        "en",
        True,
    )
    [entry] = audit_of(network, "participant.add")
    assert (entry.detail, entry.actor) == (f"participant {ida.id} added", COORDINATOR)


def test_edit_with_errors_and_a_taken_address_then_saves(web, network) -> None:
    client = web(COORDINATOR)
    sara = pid(network, SARA)
    page = client.get(f"/workspace/network/{sara}/edit")
    assert page.status_code == 200
    assert f'value="{SARA}"' in page.text and '<option value="service_user" selected>' in page.text
    changes = {
        "name": "Sara Ahmadi",
        "email": SARA,
        "organisation": "Göteborgs Stad",
        "role": "service_user",
        "language": "en",
    }

    taken = client.submit(f"/workspace/network/{sara}/edit", data={**changes, "email": ANNA})
    assert taken.status_code == 422
    error = re.search(r'id="email-error" role="alert">([^<]+)<', taken.text)
    assert (
        error
        and unescape(error.group(1))
        == f"Another participant (Anna Lindqvist) has the address {ANNA}."
    )
    assert f'value="{ANNA}"' in taken.text  # as typed
    empty = client.submit(f"/workspace/network/{sara}/edit", data={**changes, "organisation": " "})
    assert 'id="organisation-error" role="alert">Empty organisation.' in empty.text
    assert (
        people(network)[SARA].organisation_id
        == people(network)["lars.ek@goteborg.example"].organisation_id
    )
    assert audit_of(network, "participant.edit") == []

    same = client.submit(f"/workspace/network/{sara}/edit", data=changes)
    assert "Nothing was changed for Sara Ahmadi." in text_of(
        client.get(same.headers["location"]).text
    )
    assert audit_of(network, "participant.edit") == []

    saved = client.submit(
        f"/workspace/network/{sara}/edit",
        data={
            **changes,
            "email": "sara@ny.example",
            "role": "professional",
            "organisation": "Ny Förening",
        },
    )
    assert saved.status_code == 303
    assert "Saved the changes to Sara Ahmadi." in text_of(
        client.get(saved.headers["location"]).text
    )
    now = people(network)["sara@ny.example"]
    assert now.id == sara and now.email_key == "sara@ny.example" and str(now.role) == "professional"
    assert SARA not in people(network)
    [entry] = audit_of(network, "participant.edit")
    assert (entry.detail, entry.actor) == (
        f"participant {sara}: email, organisation, role changed",
        COORDINATOR,
    )
    # The new address is theirs now: the import updates them by it.
    done = upload(client, HEADER + "Sara A,SARA@ny.example,Ny Förening,professional,sv\n")
    assert "Imported 0 new and updated 1 participant." in text_of(
        client.get(done.headers["location"]).text
    )


def test_an_unknown_or_erased_person_is_not_found(web, network) -> None:
    from flows.people.privacy import erase_person

    client = web(COORDINATOR)
    sara = pid(network, SARA)
    erase_person(network, email=SARA)
    for path in ("edit", "export", "erase"):
        for who in (sara, 999):
            assert client.get(f"/workspace/network/{who}/{path}").status_code == 404
    assert client.get("/workspace/network/abc/edit").status_code == 404


# Access and erasure


def test_export_is_the_persons_data_as_a_json_download(web, network) -> None:
    got = web(COORDINATOR).get(f"/workspace/network/{pid(network, ANNA)}/export")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["content-disposition"].startswith("attachment;")
    shown = json.loads(got.text)
    again = json.loads(json.dumps(export_person(network, email=ANNA)))
    # The same data; the second copy also lists the first one taken (audited with the actor).
    assert {k: v for k, v in shown.items() if k != "audit"} == {
        k: v for k, v in again.items() if k != "audit"
    }
    assert [e["action"] for e in again["audit"]] == [
        *(e["action"] for e in shown["audit"]),
        "participant.export",
    ]
    assert shown["participant"]["name"] == "Anna Lindqvist"
    with Session(network) as s:
        exports = [e for e in queries.every_audit_entry(s) if e.action == "participant.export"]
    assert [e.actor for e in exports] == [COORDINATOR, "coordinator"]  # the web, then the CLI's


def test_erase_says_what_goes_and_what_stays_then_erases(web, network) -> None:
    client = web(COORDINATOR)
    sara = pid(network, SARA)
    confirm = client.get(f"/workspace/network/{sara}/erase")
    shown = text_of(confirm.text)
    for said in (
        "Erasure cannot be undone.",
        "Their name and email address.",
        "Their written answers to follow-up questions.",
        "Messages to them not sent yet are dropped.",
        "their quoted words become “[erased]”",
        "the audit log",
        "their scale answers, as anonymous numbers: the indicators and the counts in reports stay",
        "Mail already delivered",
        "They get no further mail from any cycle.",
    ):
        assert said in shown, said
    assert '<label for="reason">Reason (optional)</label>' in confirm.text
    assert people(network)[SARA].name == "Sara Ahmadi"  # the page alone changes nothing

    erased = client.submit(
        f"/workspace/network/{sara}/erase", data={"reason": "Sara Ahmadi asked by phone"}
    )
    assert erased.status_code == 303
    listed = client.get(erased.headers["location"])
    assert (
        'role="status">The person was erased: 0 written answers and 0 messages cleared'
        in listed.text
    )
    assert "Sara Ahmadi" not in listed.text and SARA not in listed.text
    with pytest.raises(NotFound):
        export_person(network, email=SARA)
    assert all(p.name != "Sara Ahmadi" for p in list_network(network))
    [entry] = audit_of(network, "participant.erase")
    assert entry.actor == COORDINATOR and entry.reason == "[erased] asked by phone"


# Guards


POSTS = [
    "/workspace/network/import",
    "/workspace/network/add",
    "/workspace/network/{id}/edit",
    "/workspace/network/{id}/erase",
]
GETS = [
    "/workspace/network",
    "/workspace/network/import",
    "/workspace/network/add",
    "/workspace/network/{id}/edit",
    "/workspace/network/{id}/export",
    "/workspace/network/{id}/erase",
]


def test_every_post_without_the_token_changes_nothing(web, network) -> None:
    client = web(COORDINATOR)
    sara = pid(network, SARA)
    before = {e: (p.name, p.email, str(p.role)) for e, p in people(network).items()}
    forms = {
        "/workspace/network/add": {"data": NEW},
        f"/workspace/network/{sara}/edit": {"data": {**NEW, "email": SARA}},
        f"/workspace/network/{sara}/erase": {"data": {"reason": "x"}},
        "/workspace/network/import": {
            "files": {"file": ("n.csv", HEADER.encode() + b"A,a@x.example,O,manager,sv\n")}
        },
    }
    for path, form in forms.items():
        for token in (None, "wrong"):
            sent = dict(form)
            if token:
                if "files" in sent:
                    sent["data"] = {"csrf": token}
                else:
                    sent["data"] = {**sent["data"], "csrf": token}
            refused = client.post(path, **sent)
            assert refused.status_code == 403, path
            assert "Nothing was changed." in refused.text
    assert {e: (p.name, p.email, str(p.role)) for e, p in people(network).items()} == before
    assert audit_of(network, "participant.erase") == audit_of(network, "participant.add") == []


@pytest.mark.parametrize("account", [VIEWER, SIGNER])
def test_viewers_and_signers_get_403_on_every_route(web, network, account: str) -> None:
    sara = pid(network, SARA)
    client = web(account)
    coordinator = web(COORDINATOR)
    token = csrf_of(coordinator.get("/workspace/network/add").text)
    for path in GETS:
        assert client.get(path.format(id=sara)).status_code == 403, path
    own = csrf_of(client.get("/workspace/account").text)
    for path in POSTS:
        for csrf in (own, token):
            got = client.post(path.format(id=sara), data={**NEW, "csrf": csrf})
            assert got.status_code == 403, path
    assert SARA in people(network) and len(people(network)) == 13


def test_anonymous_is_sent_to_the_login_page(web, network) -> None:
    client = web()
    sara = pid(network, SARA)
    for path in GETS:
        got = client.get(path.format(id=sara))
        assert got.status_code == 303 and got.headers["location"].startswith("/workspace/login"), (
            path
        )
    for path in POSTS:
        got = client.post(path.format(id=sara), data=NEW)
        assert got.status_code == 303 and got.headers["location"].startswith("/workspace/login"), (
            path
        )
    assert len(people(network)) == 13
