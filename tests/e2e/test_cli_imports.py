"""The command starts without the heavy libraries: Prefect only for the commands that run a
flow, the store's engine only for commands that open it. Each check runs in a fresh
interpreter, so modules other tests imported do not count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.subprocess


def loaded_after(code: str, env: dict[str, str]) -> tuple[Any, set[str]]:
    """Run ``code`` in a new interpreter; what it sets as ``result``, and the top-level
    packages in sys.modules after it."""
    script = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps({'result': result, "
        "'modules': sorted({m.partition('.')[0] for m in sys.modules})}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout.splitlines()[-1])
    return data["result"], set(data["modules"])


@pytest.fixture
def user_env(user_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(user_env)
    env["SAMVERKAN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'samverkan.db'}"
    env["SAMVERKAN_MAIL_DIR"] = str(tmp_path / "mail")
    return env


def test_importing_the_command_loads_no_heavy_library(user_env: dict[str, str]) -> None:
    _, modules = loaded_after("import flows.cli\nresult = None", user_env)
    for heavy in ("prefect", "sqlalchemy", "alembic", "matplotlib"):
        assert heavy not in modules, f"import flows.cli loads {heavy}"


@pytest.mark.parametrize(
    ("args", "output"),
    [
        (["--help"], "Example:  samverkan demo"),
        (["cycle", "list"], "no cycles yet: samverkan cycle launch --help"),
    ],
)
def test_a_command_that_runs_no_flow_does_not_start_prefect(
    user_env: dict[str, str], args: list[str], output: str
) -> None:
    (exit_code, shown), modules = loaded_after(
        "from typer.testing import CliRunner\n"
        "from flows.cli import app\n"
        f"shown = CliRunner().invoke(app, {args!r})\n"
        "result = [shown.exit_code, shown.output]",
        user_env,
    )
    assert exit_code == 0, shown
    assert output in shown
    assert "prefect" not in modules
