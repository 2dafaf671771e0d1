"""`samverkan worker` checks the store, the link key and the mail server before it takes any
run: a worker set up wrongly says so in one line and exits 2, instead of reporting itself
ready and failing every run it takes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.e2e.test_cli import SAMVERKAN
from tests.smtpd import RecordingSMTP, free_port

pytestmark = pytest.mark.subprocess
NOWHERE = f"http://127.0.0.1:{free_port()}/api"  # nothing answers there


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A worker's environment: a Prefect server address, a store; nothing else samverkan's."""
    found = {k: v for k, v in os.environ.items() if not k.startswith(("SAMVERKAN_", "PREFECT_"))}
    found["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    found["PREFECT_API_URL"] = NOWHERE
    found["SAMVERKAN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'samverkan.db'}"
    return found


def one_line_error(args: list[str], env: dict[str, str]) -> str:
    """Run the command; it must stop by itself, with one error line and status 2."""
    result = subprocess.run([SAMVERKAN, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.skipif(not PG_URL, reason="needs SAMVERKAN_TEST_POSTGRES_URL")
def test_a_worker_on_a_store_that_does_not_exist_stops_at_once(env) -> None:
    assert PG_URL
    env["SAMVERKAN_DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + "/no_such_store"
    env["SAMVERKAN_SECRET_KEY"] = "k" * 40
    line = one_line_error(["worker", "--pool", "samverkan"], env)
    assert line.startswith("error: cannot open the database") and "no_such_store" in line


@pytest.mark.skipif(not PG_URL, reason="needs SAMVERKAN_TEST_POSTGRES_URL")
def test_a_worker_on_a_shared_store_needs_the_link_key(env) -> None:
    assert PG_URL
    env["SAMVERKAN_DATABASE_URL"] = PG_URL
    line = one_line_error(["worker", "--pool", "samverkan"], env)
    assert "SAMVERKAN_SECRET_KEY" in line


@pytest.mark.parametrize("args", [["worker", "--pool", "samverkan"], ["worker", "--every", "5"]])
def test_a_worker_whose_mail_server_does_not_answer_stops_at_once(env, args) -> None:
    port = free_port()
    env["SAMVERKAN_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    if "--every" in args:  # embedded mode: Prefect in the process, no server
        del env["PREFECT_API_URL"]
    line = one_line_error(args, env)
    assert line.startswith(f"error: SAMVERKAN_SMTP_URL: cannot connect to 127.0.0.1:{port}")


def test_with_store_and_mail_in_order_the_worker_goes_on_to_prefect(env) -> None:
    with RecordingSMTP() as smtp:
        env["SAMVERKAN_SMTP_URL"] = smtp.url
        line = one_line_error(["worker", "--pool", "samverkan"], env)
        assert smtp.recorder.messages == []  # the check sent nothing
    assert line.startswith(f"error: cannot reach the Prefect server at {NOWHERE}")
