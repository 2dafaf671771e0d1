"""Zombie runs: a flow run whose worker died stays "Running" (or "Pending", if it died while
the run was starting) on the Prefect server unless something marks it. Prefect's answer, from
its guide to detecting zombie flows, is flow-run heartbeats and an automation; ``samverkan
deploy`` creates two (``ensure``), for the runs of samverkan's deployments only (other flows on
the same server, with other heartbeats, are not theirs to judge):

- ``NAME``: a run that has sent a heartbeat and then sends neither another one nor a final
  state within ``MISSED_WITHIN`` seconds is set to Crashed. Samverkan's deployments have their
  runs send one every ``HEARTBEAT_SECONDS`` (in the runs' environment, whoever started the
  worker), so a run is Crashed after two missed heartbeats: about 90 to 100 s after its last
  one, within two minutes of its worker's death.
- ``STARTING``: a run that went Pending (a worker took it) and is neither Running nor ended
  ``STARTING_WITHIN`` seconds later is set to Crashed: its worker died, or was stopped, while
  it was starting (such a run has no heartbeat yet for the first automation to miss).

What a crashed run held frees itself: its messages in flight are found by the next tick once
their lease has run out (``SAMVERKAN_SENDING_LEASE_SECONDS``) and marked uncertain, and its
SMTP connection slots free themselves after their lease (flows/orchestration/limits.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

NAME = "samverkan: crash zombie flow runs"
STARTING = "samverkan: crash flow runs that never started"
HEARTBEAT_SECONDS = 30  # Prefect's smallest heartbeat interval
MISSED_WITHIN = 90  # no heartbeat for this long: two missed in a row
STARTING_WITHIN = 600  # a worker starts a run in seconds; ten minutes is no start
ENDED = {
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}


def automations(deployment_ids: list[str]) -> list[Any]:
    """The two automations, for the runs of these deployments."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    runs = ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]})
    ours = ResourceSpecification(
        {
            "prefect.resource.role": "deployment",
            "prefect.resource.id": [f"prefect.deployment.{i}" for i in deployment_ids],
        }
    )

    def crash_after(
        name: str, after: str, expect: str, within: int, what: str, message: str
    ) -> Any:
        """Crashed, with ``message``, for a run that had ``after`` and then neither
        ``expect`` nor a final state within ``within`` seconds."""
        return AutomationCore(
            name=name,
            description=f"Marks a run of samverkan's deployments Crashed {what}. "
            "Made by samverkan deploy.",
            trigger=EventTrigger(
                after={after},
                expect={expect, *ENDED},
                match=runs,
                match_related=ours,
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=within),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED, name="Crashed", force=False, message=message
                )
            ],
        )

    return [
        crash_after(
            NAME,
            "prefect.flow-run.heartbeat",
            "prefect.flow-run.heartbeat",
            MISSED_WITHIN,
            f"when its worker stopped sending heartbeats (none for {MISSED_WITHIN} s)",
            f"no heartbeat for {MISSED_WITHIN} s: its worker stopped "
            "(marked by samverkan's zombie automation)",
        ),
        crash_after(
            STARTING,
            "prefect.flow-run.Pending",
            "prefect.flow-run.Running",
            STARTING_WITHIN,
            f"when it was taken by a worker and did not start within {STARTING_WITHIN} s",
            f"taken by a worker and not started within {STARTING_WITHIN} s: its worker "
            "stopped (marked by samverkan's zombie automation)",
        ),
    ]


def ensure(client: Any, deployment_ids: list[str]) -> list[str]:
    """Create the automations on the Prefect server, or bring those of the same names up to
    date; a line each for the output of ``samverkan deploy``."""
    for wanted in automations(deployment_ids):
        found = client.read_automations_by_name(wanted.name)
        if found:
            client.update_automation(found[0].id, wanted)
            for extra in found[1:]:  # two deploys that raced each made one
                client.delete_automation(extra.id)
        else:
            client.create_automation(wanted)
    return [
        f"automation {NAME!r}: a run without a heartbeat for {MISSED_WITHIN} s is marked Crashed",
        f"automation {STARTING!r}: a run taken but not started in {STARTING_WITHIN} s is "
        "marked Crashed",
    ]
