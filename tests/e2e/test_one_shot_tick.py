"""A one-shot ``samverkan tick`` with no Prefect server configured runs the same tick without
Prefect: it does not import it, so it starts no embedded server (5-12 s, about 200 MB) and a
killed tick leaves no server process behind. (With PREFECT_API_URL set, flows/orchestration/
__init__.py sends it through Prefect flows instead; the distributed tests cover that path.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import read_maildir
from tests.e2e.test_cli import EXAMPLE_CSV, LAUNCH

CLI = [sys.executable, "-m", "flows.cli"]


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.subprocess
def test_a_tick_that_sends_a_stage_runs_without_prefect(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    env = user_env
    assert _run("participants", "import", str(EXAMPLE_CSV), env=env, cwd=tmp_path).returncode == 0
    assert _run(*LAUNCH, env=env, cwd=tmp_path).returncode == 0
    assert _run("approve", "1", "invitation", env=env, cwd=tmp_path).returncode == 0
    ticked = subprocess.run(
        [sys.executable, "-X", "importtime", *CLI[1:], "tick", "--now", "2027-01-20T09:00"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ticked.returncode == 0, ticked.stderr[-2000:]
    assert "cycle 1: invitation (email) -> done, 13 messages" in ticked.stdout
    assert "delivery: 26 sent" in ticked.stdout
    modules = _imported(ticked.stderr)
    assert "flows.stages" in modules  # the check below sees what the tick imported
    assert not {m for m in modules if m == "prefect" or m.startswith("prefect.")}
    mail = read_maildir(tmp_path / "mail")
    assert len(mail) == 13 and all(len(m) == 2 for m in mail.values())
    # No Prefect runs were recorded anywhere: its home was never created.
    assert not (tmp_path / "prefect-home").exists()


@pytest.mark.subprocess
def test_a_killed_tick_leaves_no_process_behind(tmp_path: Path, user_env: dict[str, str]) -> None:
    """SIGKILL to a tick that is sending, as a cron time-out sends it to the process: nothing of
    its process group is left running (its embedded Prefect server used to live on)."""
    env = user_env
    # A slow SMTP server that never answers makes the tick sit in delivery when it is killed.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    env["SAMVERKAN_SMTP_URL"] = f"smtp://127.0.0.1:{listener.getsockname()[1]}"
    env["SAMVERKAN_SMTP_TIMEOUT"] = "60"
    assert _run("participants", "import", str(EXAMPLE_CSV), env=env, cwd=tmp_path).returncode == 0
    assert _run(*LAUNCH, env=env, cwd=tmp_path).returncode == 0
    assert _run("approve", "1", "invitation", env=env, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [*CLI, "tick", "--now", "2027-01-20T09:00"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        listener.settimeout(120)
        conn, _ = listener.accept()  # the tick is delivering now
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("a process of the killed tick is still running")
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
