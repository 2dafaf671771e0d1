"""The SMTP caps hold for every deliver run together where a Prefect server keeps them: two
deliver runs in two processes at once, against the session's Prefect server, stay under one
rate and one connection cap, counted where a relay counts them, at a real SMTP server.

Each run is set to keep the same caps on its own too, so that without the shared limits the
relay would see twice the rate and more connections than the cap. The checks are upper
bounds: a slow machine makes the runs slower, never faster than the caps.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flows.settings import Settings
from tests.e2e.test_delivery import queue_invitations, statuses
from tests.smtpd import RecordingSMTP

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]
RATE = 10  # messages a second, for both runs together
CAP = 3  # connections open at once, for both together
EACH = 2  # connections each run asks for
WINDOW = 4 * RATE  # messages: four seconds' worth at the rate
TRANSIT = 0.5  # seconds: what the first and the last message's way to the server may add
PEOPLE = 100  # 10 s at the rate: long enough that both runs are sending at once

WORKER = """
import sys
from datetime import UTC, datetime
from flows.orchestration.flows import quiet_prefect, send
print("ready", file=sys.stderr, flush=True)
sys.stdin.readline()  # start together: the test says when
with quiet_prefect():
    print(send(now=datetime(2027, 1, 20, 8, tzinfo=UTC)))
"""


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    said = []
    while not said or said[-1].strip() != "ready":
        said.append(worker.stderr.readline())
        assert said[-1], "".join(said)  # the worker ended before it was ready
    return worker


def test_two_deliver_runs_at_once_keep_one_rate_and_one_connection_cap(
    engine, settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from flows.orchestration import limits

    with RecordingSMTP() as server:
        monkeypatch.setenv("SAMVERKAN_SMTP_URL", server.url)
        queue_invitations(engine, Settings(), people=PEOPLE, tmp=tmp_path)
        # What `samverkan deploy` sets up from the deploying machine's settings.
        deployed = Settings(smtp_concurrency=CAP, smtp_rate=RATE)
        with get_client(sync_client=True) as client:
            assert limits.ensure(client, deployed) == [
                f"limit samverkan-smtp-connections: {CAP} SMTP connections at once, "
                "across all deliver runs",
                f"limit samverkan-smtp-rate: {RATE} messages a second, across all deliver runs",
            ]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "SAMVERKAN_SMTP_CONCURRENCY": str(EACH),
            "SAMVERKAN_SMTP_RATE": str(RATE),
        }
        try:
            workers = [start_worker(env) for _ in range(2)]
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            outputs = [w.communicate(timeout=600) for w in workers]
        finally:
            with get_client(sync_client=True) as client:
                for name in (limits.CONNECTIONS, limits.RATE):
                    client.delete_global_concurrency_limit_by_name(name)
        assert [w.returncode for w in workers] == [0, 0], outputs
        arrived = sorted(server.recorder.arrived)
        received = Counter(to[0] for _, to, _ in server.recorder.messages)
        most_open = server.recorder.most_open

    assert len(received) == PEOPLE and max(received.values()) == 1
    assert set(statuses(engine).values()) == {"sent"}
    sent_by = [int(out.strip().split(" sent")[0]) for out, _ in outputs]
    assert sum(sent_by) == PEOPLE and min(sent_by) > 0  # both runs sent, at the same time
    assert most_open <= CAP
    # No stretch of WINDOW / RATE seconds holds more than WINDOW messages: any WINDOW + 1 in a
    # row span that long, less the transit of the first and the last (the limit spaces the
    # sends; a message's way to the server varies by a tenth of a second or two under load,
    # which over one second alone once left 0.83 s between six arrivals). Without the shared
    # limit the two runs send at twice the rate and those spans are half as long.
    spans = [arrived[i + WINDOW] - arrived[i] for i in range(len(arrived) - WINDOW)]
    assert min(spans) >= WINDOW / RATE - TRANSIT, spans


def test_without_the_limits_on_the_server_each_run_keeps_the_caps_and_says_so_once(
    settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.settings import PREFECT_API_URL

    from flows.orchestration import limits
    from messaging.ratelimit import RateLimit

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    monkeypatch.setattr(limits, "_said", set())
    # A server with none of samverkan's limits (another test's `register` may have set some).
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for name in (limits.CONNECTIONS, limits.RATE, limits.PER_MINUTE):
            with contextlib.suppress(ObjectNotFound):
                client.delete_global_concurrency_limit_by_name(name)
    caps = settings.model_copy(
        update={"smtp_url": "smtp://127.0.0.1:25", "smtp_rate": 14.0, "smtp_rate_per_minute": 30}
    )
    with caplog.at_level("WARNING", logger="samverkan"):
        for _ in range(2):
            limit = limits.shared_limit(caps)
            assert isinstance(limit, limits.ServerLimit)
            assert (limit.rates, limit.shared_connections) == ([], False)
            assert isinstance(limit.local, RateLimit)
            assert (limit.local.per_second, limit.local.per_minute) == (14.0, 30)
    said = [r.getMessage() for r in caplog.records if r.name == "samverkan"]
    assert said == [
        "the Prefect server has no limit samverkan-smtp-rate (run samverkan deploy): "
        "SAMVERKAN_SMTP_RATE holds for each deliver run on its own, not for all together",
        "the Prefect server has no limit samverkan-smtp-rate-per-minute (run samverkan "
        "deploy): SAMVERKAN_SMTP_RATE_PER_MINUTE holds for each deliver run on its own, not "
        "for all together",
        "the Prefect server has no limit samverkan-smtp-connections (run samverkan deploy): "
        "SAMVERKAN_SMTP_CONCURRENCY holds for each deliver run on its own, not for all "
        "together",
    ]


def test_without_a_prefect_server_each_drain_keeps_the_caps_alone(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.orchestration import limits

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert limits.shared_limit(settings) is None
