"""The map points at what is there: every file of the repo that the README, ARCHITECTURE.md,
the Makefile or a comment or docstring in the code names exists, so a reader who follows one
(after a file moved, say) does not land on nothing. Placeholders (``NAME``, ``<name>``, a
``*``) are not files and are left alone."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "ARCHITECTURE.md", "CHANGELOG.md", "Makefile", "pyproject.toml")
CODE = ("flows", "messaging", "store", "tests", "benchmarks")
# A path into the repo's own folders, ending in a file or a folder.
REFERENCE = re.compile(
    r"(?<![\w/.-])((?:flows|messaging|store|tests|process_templates|benchmarks|docs)/[\w./-]*\w)"
)
PLACEHOLDER = re.compile(r"NAME|<|\*")
# Named on purpose though not in a checkout: the files the README tells a reader to create
# (its example of adding a language, Somali), and where a wheel puts the bundled templates.
ELSEWHERE = {
    "messaging/locale/so/LC_MESSAGES/samverkan.po",
    "process_templates/instruments/translations/samverkan-sf.so.yaml",
    "flows/process_templates",
}


def _prose_of_python(source: str) -> list[tuple[int, str]]:
    """The comments and docstrings of a module, by line: what a reader reads, not the code's
    strings."""
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                first = node.body[0].lineno
                found += [(first + n, line) for n, line in enumerate(docstring.splitlines())]
    return sorted(found)


def _texts(root: Path) -> Iterator[tuple[Path, int, str]]:
    for name in DOCUMENTS:
        path = root / name
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                yield path, number, line
    for folder in CODE:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                for number, line in _prose_of_python(path.read_text()):
                    yield path, number, line


def stale_references(root: Path) -> list[str]:
    """``file:line: path`` for each named path that is not in ``root``."""
    found = []
    for path, number, line in _texts(root):
        for match in REFERENCE.finditer(line):
            named = match.group(1).rstrip(".")
            if PLACEHOLDER.search(named) or named in ELSEWHERE:
                continue
            if not (root / named).exists():
                found.append(f"{path.relative_to(root)}:{number}: {named}")
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1])))


def test_every_file_the_docs_and_comments_name_exists() -> None:
    assert stale_references(ROOT) == []


def test_a_reference_to_a_moved_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_here.py").write_text(
        '"""Beside tests/unit/test_here.py, not tests/test_here.py."""\n'
        "# see flows/gone.py\n"
        "NOT_PROSE = 'store/only_a_string.py'\n"
    )
    (tmp_path / "README.md").write_text(
        "Run `tests/unit/test_here.py`; templates go in `process_templates/NAME/`.\n"
    )
    assert stale_references(tmp_path) == [
        "tests/unit/test_here.py:1: tests/test_here.py",
        "tests/unit/test_here.py:2: flows/gone.py",
    ]
