"""Importing participants: all rows or none, one line per bad row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from flows.people.participants import import_participants
from store.errors import ImportRejected, InvalidInput
from store.models import Organisation, Participant

HEADER = "name,email,organisation,role,language\n"


def write(tmp_path: Path, body: str, *, bom: bool = False, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + (HEADER + body).encode("utf-8"))
    return path


def people(engine) -> list[Participant]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.exec(select(Participant).order_by(Participant.id)).all())


def test_valid_file_with_bom_imports_everyone(engine, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Åsa Öberg,asa@kommun.example,Kommunen,politician,sv\n"
        "Sam Lee,Sam.Lee@Region.example,Regionen,service_user,en\n",
        bom=True,
    )
    result = import_participants(engine, path)
    assert (result.created, result.updated) == (2, 0)
    rows = people(engine)
    assert [(p.name, p.email, str(p.role), str(p.language)) for p in rows] == [
        ("Åsa Öberg", "asa@kommun.example", "politician", "sv"),
        ("Sam Lee", "Sam.Lee@region.example", "service_user", "en"),
    ]
    with Session(engine) as s:
        assert sorted(o.name for o in s.exec(select(Organisation)).all()) == [
            "Kommunen",
            "Regionen",
        ]


def test_known_email_in_other_case_updates_that_participant(engine, tmp_path: Path) -> None:
    import_participants(
        engine, write(tmp_path, "Sam Lee,sam@region.example,Regionen,professional,sv\n")
    )
    result = import_participants(
        engine,
        write(tmp_path, "Sam Lee-Berg,SAM@region.example,Kommunen,manager,en\n", name="b.csv"),
    )
    assert (result.created, result.updated) == (0, 1)
    [person] = people(engine)
    assert (person.name, str(person.role), str(person.language)) == (
        "Sam Lee-Berg",
        "manager",
        "en",
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("Ann,not-an-email,Org,professional,sv", "bad email 'not-an-email'"),
        ("Ann,ann@x.example,Org,boss,sv", "unknown role 'boss'"),
        ("Ann,ann@x.example,Org,manager,svenska", "unknown language 'svenska'"),
        (",ann@x.example,Org,manager,sv", "empty name"),
        ('"Ann\nBcc: evil@x.example",ann@x.example,Org,manager,sv', "line break or control"),
        ("Ann,ann@x.example,,manager,sv", "empty organisation"),
        ("Ann,ann@x.example,Org,manager", "4 fields, the header has 5"),
    ],
)
def test_each_kind_of_bad_row_is_reported_and_nothing_imported(
    engine, tmp_path: Path, row: str, reason: str
) -> None:
    path = write(tmp_path, "Good Person,good@x.example,Org,professional,sv\n" + row + "\n")
    with pytest.raises(ImportRejected) as caught:
        import_participants(engine, path)
    [problem] = caught.value.problems
    assert problem.startswith("line 3: ")
    assert reason in problem
    assert people(engine) == []  # the good row was not imported either


def test_every_bad_row_is_listed(engine, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "A,a@x.example,Org,manager,sv\nB,bad,Org,manager,sv\n"
        "C,c@x.example,Org,king,sv\nD,a@X.example,Org,manager,sv\n",
    )
    with pytest.raises(ImportRejected) as caught:
        import_participants(engine, path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 3", "line 4", "line 5"]
    assert "already on line 2" in caught.value.problems[2]


def test_header_is_required(engine, tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text("Ann,ann@x.example,Org,manager,sv\n")
    with pytest.raises(InvalidInput, match="the header lacks"):
        import_participants(engine, path)


def test_file_that_is_not_utf8_is_refused(engine, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "Åsa,asa@x.example,Org,manager,sv\n").encode("latin-1"))
    with pytest.raises(InvalidInput, match="not UTF-8"):
        import_participants(engine, path)


def test_missing_file_is_one_clear_error(engine, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        import_participants(engine, tmp_path / "nope.csv")


def test_hostile_names_are_stored_as_given(engine, tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script> {{ 7*7 }} =?UTF-8?Q?=0A?=Bcc: x@evil.example"
    import_participants(engine, write(tmp_path, f'"{hostile}",h@x.example,Org,manager,sv\n'))
    assert people(engine)[0].name == hostile


# The quick checks of parse_csv must say what email_validator and unicodedata say.

TYPICAL = [
    "anna.berg@kommun.example",
    "Sam.Lee@Region.Example",
    "o'brien+news@mail.example",
    "x_y-z.2027@sub.domain.example.org",
    "a@b.co",
    "{odd}|~#$%&*/=?^`@weird.example",
    "a@x.1e",  # the last label only has to end with a letter
    "a" * 64 + "@x.example",
    "a@" + "b" * 63 + ".example",
]
ODD = [
    # Each one is for email_validator to judge: refused, or normalised in its own way.
    "Info@x.example",  # a role mailbox: lower-cased
    "POSTMASTER@x.example",
    "a@xn--bcher-kva.example",  # IDNA
    "a@ab--cd.example",
    "a@x.local",
    "a@x.test",
    "a@localhost",
    "a@x.invalid",
    "a@x.onion",
    "a@1.in-addr.arpa",
    "a@x.123",
    "a@example",
    "åsa@kommun.example",
    "asa@kommün.example",
    "a@[1.2.3.4]",
    '"a b"@x.example',
    "A <a@x.example>",
    ".a@x.example",
    "a.@x.example",
    "a..b@x.example",
    "a@-x.example",
    "a@x-.example",
    "a@x..example",
    "a@x.example.",
    "a@.x.example",
    "a@x_y.example",
    "a@@x.example",
    "@x.example",
    "a@",
    "a",
    "a b@x.example",
    "a\\b@x.example",
    "a@x.example\n",
    "a\u200b@x.example",
    "a@x.e-",
    "a@x.-e",
    "a@" + "b" * 64 + ".example",
]


def _long(rng, total: int) -> str:  # type: ignore[no-untyped-def]
    labels = []
    while sum(len(x) + 1 for x in labels) < total - 10:
        labels.append("".join(rng.choice("abc") for _ in range(rng.randint(1, 63))))
    return "a@" + ".".join(labels) + ".se"


def generated_addresses() -> list[str]:
    import random

    rng = random.Random(2027)
    parts = ["a", "Z", "0", ".", "-", "_", "+", "'", "@", '"', "<", ">", " ", "å", "xn", "--"]
    parts += ["info", "x", "example", "local", "test", "(", "\\", "[", "]", "1", "ß", "\u0301"]
    addresses = list(TYPICAL) + ODD
    for _ in range(10_000):  # random strings: nearly all of them refused
        addresses.append("".join(rng.choice(parts) for _ in range(rng.randint(1, 12))))
    locals_ = ["anna", "Anna.Berg", "a+b", "o'b", "info", "x.y.z", "a..b", ".a", "å", "a b"]
    domains = ["x.example", "X.EXAMPLE", "a-b.se", "a--b.se", "x.local", "x.test", "x.se.", "1.2"]
    domains += ["xn--bcher-kva.example", "sub.x.localhost", "x.c0m", "x.0c", "-x.se", "x", "x..se"]
    for _ in range(4_000):  # plausible shapes: many of them accepted
        local = rng.choice(locals_) + rng.choice(["", str(rng.randint(0, 999))])
        addresses.append(f"{local}@{rng.choice(domains)}")
    for total in (250, 254, 255, 260):  # about the length limits
        addresses.append(_long(rng, total))
        addresses.append("a" * (total - len("@x.example")) + "@x.example")
    return addresses


def test_quick_email_check_agrees_with_email_validator() -> None:
    from email_validator import EmailNotValidError, validate_email

    from flows.people.participants import normalise_email, plain_email

    quick = refused = 0
    for address in generated_addresses():
        try:
            expected: str | None = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            expected, reason = None, str(exc)
        fast = plain_email(address)
        if fast is not None:
            quick += 1
            assert fast == expected, address
        if expected is None:
            refused += 1
            with pytest.raises(EmailNotValidError) as caught:
                normalise_email(address)
            assert str(caught.value) == reason
        else:
            assert normalise_email(address) == expected
    assert [plain_email(a) for a in TYPICAL] == [
        validate_email(a, check_deliverability=False).normalized for a in TYPICAL
    ]
    assert all(plain_email(a) is None for a in ODD)
    assert quick > 400 and refused > 8_000  # both sides were exercised


def test_quick_control_check_agrees_with_unicodedata() -> None:
    import sys
    import unicodedata

    from flows.people.participants import _has_control

    flagged = {"Cc", "Cf", "Zl", "Zp"}
    # Printable text is passed without a look at each character: none of it is ever flagged.
    chars = (chr(code) for code in range(sys.maxunicode + 1))
    assert [c for c in chars if c.isprintable() and unicodedata.category(c) in flagged] == []
    for ch in "\n\r\t\x00\x7f\x85\u200b\u200e\u2028\u2029\ufeff":
        assert _has_control(f"Åsa{ch}Öberg"), repr(ch)
    for text in ("Åsa Öberg", "Åsa\u00a0Öberg", "Åsa\u3000Öberg", "Zoë", "<b>{{ x }}</b>"):
        assert not _has_control(text), text


def test_import_of_new_and_known_people_changes_only_the_known_ones(engine, tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "Ann Ek,ann@x.example,Kommunen,manager,sv\n"
        "Bo Ström,bo@x.example,Regionen,professional,en\n"
        "Cia Berg,cia@x.example,Kommunen,politician,sv\n",
    )
    import_participants(engine, first)
    with Session(engine) as s:  # Bo unsubscribed in the meantime
        bo = s.exec(select(Participant).where(Participant.email_key == "bo@x.example")).one()
        bo.consent = False
        s.add(bo)
        s.commit()
    before = {p.email_key: p for p in people(engine)}
    second = write(
        tmp_path,
        "Dan Öberg,dan@y.example,Brukarrådet,service_user,en\n"
        "Bo Ström-Lind,BO@X.example,Kommunen,manager,sv\n"
        "Eva Åkesson,eva@y.example,Regionen,facilitator,\n"
        "Ann Ek,Ann@x.example,Brukarrådet,politician,en\n",
        name="second.csv",
    )
    result = import_participants(engine, second)
    assert (result.created, result.updated) == (2, 2)
    with Session(engine) as s:
        orgs = {o.id: o.name for o in s.exec(select(Organisation)).all()}
    after = {p.email_key: p for p in people(engine)}
    assert {
        key: (p.name, p.email, orgs[p.organisation_id], str(p.role), str(p.language), p.consent)
        for key, p in after.items()
    } == {
        "ann@x.example": ("Ann Ek", "Ann@x.example", "Brukarrådet", "politician", "en", True),
        "bo@x.example": ("Bo Ström-Lind", "BO@x.example", "Kommunen", "manager", "sv", False),
        "cia@x.example": ("Cia Berg", "cia@x.example", "Kommunen", "politician", "sv", True),
        "dan@y.example": ("Dan Öberg", "dan@y.example", "Brukarrådet", "service_user", "en", True),
        "eva@y.example": ("Eva Åkesson", "eva@y.example", "Regionen", "facilitator", "sv", True),
    }
    assert {key: after[key].id for key in before} == {key: p.id for key, p in before.items()}
    assert sorted(orgs.values()) == ["Brukarrådet", "Kommunen", "Regionen"]
    assert after["cia@x.example"].updated_at == before["cia@x.example"].updated_at
    assert after["ann@x.example"].updated_at > before["ann@x.example"].updated_at


def test_one_bad_row_among_thousands_writes_nothing_and_names_its_line(
    engine, tmp_path: Path
) -> None:
    import_participants(engine, write(tmp_path, "Ann Ek,p7@x.example,Kommunen,manager,sv\n"))
    rows = [f"Person {i},p{i}@x.example,Org {i % 9},professional,en" for i in range(5000)]
    rows[3216] = "Person 3216,p3216@x,Org 3,professional,en"
    with pytest.raises(ImportRejected) as caught:
        import_participants(engine, write(tmp_path, "\n".join(rows) + "\n", name="big.csv"))
    [problem] = caught.value.problems
    assert problem.startswith("line 3218: bad email 'p3216@x': ")
    [ann] = people(engine)  # Ann was not renamed, and nobody was added
    assert (ann.name, ann.email) == ("Ann Ek", "p7@x.example")
    with Session(engine) as s:
        assert [o.name for o in s.exec(select(Organisation)).all()] == ["Kommunen"]
