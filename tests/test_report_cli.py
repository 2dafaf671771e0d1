"""`samverkan report` and `samverkan indicators` as a coordinator runs them, on the two-cycle
network of test_indicators."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_out_refuses_to_overwrite_the_database(settings, engine, two_cycles) -> None:
    if not settings.database_url.startswith("sqlite:///"):
        pytest.skip("the database is a file only with SQLite")
    _, c2 = two_cycles
    engine.dispose()
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    before = digest(db)
    result = invoke("report", str(c2), "--out", str(db))
    assert result.exit_code == 2
    assert result.output == (
        f"error: {db} exists and is not a report samverkan wrote; not overwritten "
        "(use --force to overwrite it)\n"
    )
    assert digest(db) == before
    assert invoke("cycle", "list").exit_code == 0  # the store still opens


def test_report_out_refuses_any_other_file_but_overwrites_with_force(
    settings, engine, two_cycles, tmp_path: Path
) -> None:
    _, c2 = two_cycles
    notes = tmp_path / "notes.html"
    notes.write_text("<!DOCTYPE html><p>my own notes</p>", encoding="utf-8")
    result = invoke("report", str(c2), "--out", str(notes))
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert len(result.output.splitlines()) == 1
    assert notes.read_text(encoding="utf-8") == "<!DOCTYPE html><p>my own notes</p>"
    result = invoke("report", str(c2), "--out", str(notes), "--force")
    assert (result.exit_code, result.output) == (0, f"wrote {notes}\n")
    assert "<h1>Reflektion: Cycle 2</h1>" in notes.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_report_out_overwrites_an_earlier_report(
    settings, engine, two_cycles, tmp_path: Path, fmt: str
) -> None:
    c1, c2 = two_cycles
    out = tmp_path / f"reflection.{fmt}"
    assert invoke("report", str(c1), "--format", fmt, "--out", str(out)).exit_code == 0
    assert "Cycle 1" in out.read_text(encoding="utf-8")
    result = invoke("report", str(c2), "--format", fmt, "--out", str(out))
    assert (result.exit_code, result.output) == (0, f"wrote {out}\n")
    text = out.read_text(encoding="utf-8")
    heading = {"html": "<h1>Reflektion: Cycle 2</h1>", "md": "# Reflektion: Cycle 2\n"}[fmt]
    assert heading in text and "Reflektion: Cycle 1" not in text
