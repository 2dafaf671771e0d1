"""Zombie runs: a flow run whose worker died stays "Running" on the Prefect server unless
something marks it. Prefect's answer, from its self-hosting guide, is flow-run heartbeats and
an automation; ``samverkan deploy`` creates the automation (``ensure``) and ``samverkan worker
--pool`` turns the heartbeats on for the runs it starts (``HEARTBEAT_SECONDS``).

A run that has sent a heartbeat and then sends neither another one nor a final state within
``MISSED_WITHIN`` seconds is set to Crashed, so a killed worker's runs are Crashed at most
``MISSED_WITHIN`` seconds after their last heartbeat: within two minutes. What such a run held
frees itself: its messages in flight are found by the next tick once their lease has run out
(``SAMVERKAN_SENDING_LEASE_SECONDS``) and marked uncertain, and its SMTP connection slots free
themselves after their lease (flows/orchestration/limits.py).

The heartbeat must come more often than ``MISSED_WITHIN``: a worker started some other way than
``samverkan worker --pool`` needs ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30`` in its environment,
or its long runs would be crashed while they work (Prefect's default is one heartbeat every
180 seconds).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

NAME = "samverkan: crash zombie flow runs"
HEARTBEAT_SECONDS = 30  # Prefect's smallest heartbeat interval
MISSED_WITHIN = 90  # three heartbeats missed in a row


def automation() -> Any:
    """The automation of Prefect's guide to zombie flow runs, with samverkan's timings."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=NAME,
        description=(
            "Marks a flow run Crashed when its worker stopped sending heartbeats "
            f"(none for {MISSED_WITHIN} s). Made by samverkan deploy."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=MISSED_WITHIN),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                name="Crashed",
                force=False,
                message=(
                    f"no heartbeat for {MISSED_WITHIN} s: its worker stopped "
                    "(marked by samverkan's zombie automation)"
                ),
            )
        ],
    )


def ensure(client: Any) -> str:
    """Create the automation on the Prefect server, or bring one of the same name up to date;
    one line for the output of ``samverkan deploy``."""
    wanted = automation()
    found = client.read_automations_by_name(NAME)
    if found:
        client.update_automation(found[0].id, wanted)
        for extra in found[1:]:  # two deploys that raced each made one
            client.delete_automation(extra.id)
    else:
        client.create_automation(wanted)
    return (
        f"automation {NAME!r}: a flow run without a heartbeat for {MISSED_WITHIN} s "
        "is marked Crashed"
    )
