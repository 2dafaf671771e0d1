"""How `samverkan worker --pool` stops, without a Prefect server: the Prefect worker is
replaced by a stand-in that behaves as Prefect's does when told to stop (it ends the runs it
started), with one run in flight that takes a few seconds. Linux only (the wrapper reads the
process tree from /proc). The same, with a real Prefect server and real runs, is in
tests/e2e/test_pool_faults.py (make test-chaos)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

ROOT = Path(__file__).resolve().parents[2]

# Starts one "run" (a process with a flow run id in its environment, as Prefect's are) that
# writes a file when it has finished its work; on SIGTERM it kills that run, as Prefect's
# worker does, and says so.
STAND_IN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    out = sys.argv[1]
    run = subprocess.Popen(
        [sys.executable, "-c",
         f"import time; time.sleep(3); open({out!r} + '/run-finished', 'w').close()"],
        env={**os.environ, "PREFECT__FLOW_RUN_ID": "0b6b3b4e-0000-4000-8000-000000000001"},
        start_new_session=True,
    )
    def stop(signum, frame):
        run.kill()
        open(out + "/worker-stopped", "w").write(str(run.poll() is None))
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    open(out + "/worker-ready", "w").close()
    while True:
        time.sleep(0.1)
    """
)

WRAPPER = textwrap.dedent(
    """
    import sys
    from flows.orchestration import deploy
    deploy.check_server = lambda url: None
    deploy.worker_command = lambda pool, limit: [sys.executable, sys.argv[1], sys.argv[2]]
    sys.exit(deploy.run_pool_worker("pool", None, say=lambda line: print(line, flush=True)))
    """
)


def start(tmp_path: Path, *, sigint_ignored: bool) -> subprocess.Popen[str]:
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)

    def prepare() -> None:  # pragma: no cover - in the child
        if sigint_ignored:  # as a script's `cmd &` starts it
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(stand_in), str(tmp_path)],
        cwd=ROOT,
        # A Prefect server that is not there: a forced stop cannot mark its runs on it.
        env={**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": "http://127.0.0.1:9/api"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=prepare,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "worker-ready").exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the stand-in worker did not start"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["plain", "started-with-&"])
def test_one_signal_lets_the_run_in_flight_finish_before_the_worker_stops(
    tmp_path: Path, sigint_ignored: bool
) -> None:
    proc = start(tmp_path, sigint_ignored=sigint_ignored)
    proc.send_signal(signal.SIGTERM if sigint_ignored else signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "waiting for the 1 in flight to finish" in out
    assert (tmp_path / "run-finished").exists(), out  # the run did its work
    # The worker was told to stop only once the run had ended: it had nothing left to kill.
    assert (tmp_path / "worker-stopped").read_text() == "False"


def test_a_second_signal_ends_the_run_at_once(tmp_path: Path) -> None:
    proc = start(tmp_path, sigint_ignored=False)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)  # at most the 15 s it waits for the server
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopping now: 1 run in flight ended" in out
    # The server is not there to mark it on: it says so, and who will, without waiting long.
    assert "the zombie automation will" in out
    time.sleep(3.5)
    assert not (tmp_path / "run-finished").exists()  # ended, not left running


def test_a_killed_wrapper_takes_its_worker_with_it_and_the_run_finishes(tmp_path: Path) -> None:
    """SIGKILL to samverkan's process while it waits for the run in flight: the paused worker
    does not stay behind (it dies with it), and the run, in a session of its own, finishes."""
    proc = start(tmp_path, sigint_ignored=False)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    assert "waiting for the 1 in flight" in proc.stdout.readline()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while not (tmp_path / "run-finished").exists():
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.1)
    # Killed, not told to stop: it never got to kill the run.
    assert not (tmp_path / "worker-stopped").exists()
    assert not running_stand_ins(tmp_path), "the worker outlived samverkan's process"


def running_stand_ins(tmp_path: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(tmp_path / "stand_in.py").encode() in command and state != "Z":
            found.append(int(entry))
    return found
