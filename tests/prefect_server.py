"""A real Prefect server for the distributed tests: ``prefect server start`` on loopback, backed
by a fresh PostgreSQL database, which a test can stop and start again on the same port and
database (as an operator's restart does); and the PostgreSQL databases the tests make."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.smtpd import free_port

PREFECT = [sys.executable, "-m", "prefect"]
ROOT = Path(__file__).resolve().parent.parent
SAMVERKAN = [str(Path(sys.executable).parent / "samverkan")]


def admin_url() -> str:
    assert PG_URL
    return make_url(PG_URL).set(database="postgres").render_as_string(hide_password=False)


def fresh_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def drop_database(name: str) -> None:
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def store_url(name: str) -> str:
    assert PG_URL
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM to the process's group, SIGKILL if it is still there after ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            proc.wait()


def start_pool_worker(
    env: dict[str, str], log: Path, *, sigint_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """`samverkan worker --pool it-pool` in a session of its own, its output in ``log``; with
    SIGINT ignored, as a script's `cmd &` starts it."""

    def ignore_sigint() -> None:  # pragma: no cover - in the child
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [*SAMVERKAN, "worker", "--pool", "it-pool"],
        env={**env, "PREFECT_LOGGING_LEVEL": "INFO"},
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )


class PrefectServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.database = fresh_database("prefect_it")
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api"
        assert PG_URL
        server_db = make_url(PG_URL).set(drivername="postgresql+asyncpg", database=self.database)
        self._server_env = {
            **os.environ,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_DATABASE_CONNECTION_URL": server_db.render_as_string(hide_password=False),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            # As a Prefect server is run in production: task runs recorded (this process may
            # have the embedded server's defaults in its environment, which turn it off).
            "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "true",
        }
        self._server_env.pop("PREFECT_API_URL", None)
        # What a client of this server (the samverkan command, a worker) runs with.
        self.env = {
            **os.environ,
            "PREFECT_API_URL": self.api,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        self.log_path = home / "server.log"
        self._log: BinaryIO | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", f"{self.port}"],
            env=self._server_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.api}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self._proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "the Prefect server did not start in 180 s"
            time.sleep(0.5)

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def flow_runs(self) -> list[dict[str, Any]]:
        return self.post("flow_runs/filter", {"limit": 200})

    def post(self, path: str, body: dict[str, object]) -> list[dict[str, Any]]:
        got = httpx.post(f"{self.api}/{path}", json=body, timeout=10)
        got.raise_for_status()
        return list(got.json())

    def deployments(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self.post("deployments/filter", {})}

    def run(self, deployment: str, parameters: dict[str, object] | None = None) -> str:
        """Start a run of a deployment now; its id."""
        found = self.deployments()[deployment]
        started = httpx.post(
            f"{self.api}/deployments/{found['id']}/create_flow_run",
            json={"parameters": parameters or {}},
            timeout=10,
        )
        assert started.status_code == 201, started.text
        return str(started.json()["id"])

    def flow_run(self, run_id: str) -> dict[str, Any]:
        got = httpx.get(f"{self.api}/flow_runs/{run_id}", timeout=10)
        got.raise_for_status()
        return dict(got.json())


def prefect_server_fixture(tmp_path: Path) -> Iterator[PrefectServer]:
    if not PG_URL:
        pytest.skip("needs SAMVERKAN_TEST_POSTGRES_URL (a PostgreSQL server); .ci/run sets it")
    server = PrefectServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        drop_database(server.database)
