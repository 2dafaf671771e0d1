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
        ("Ann,ann@x.example,Org,manager,fi", "unknown language 'fi'"),
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
