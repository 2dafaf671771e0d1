"""Prefect: the flows and tasks that run a cycle's stages, their deployments and settings.

Importing this package is cheap; Prefect itself is imported by flows/orchestration/flows.py
only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flows.orchestration.prefect_settings import server_configured

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from flows.cycles.tick import TickReport
    from flows.settings import Settings


def one_shot_tick(settings: Settings, engine: Engine, now: datetime) -> TickReport:
    """``samverkan tick``: as Prefect flow runs where a Prefect server is configured
    (``PREFECT_API_URL``), so they show in its UI; otherwise the same tick run directly,
    without starting Prefect's embedded server for one tick."""
    if server_configured():
        from flows.orchestration.flows import run_tick

        return run_tick(now)
    from flows.cycles.tick import tick_direct

    return tick_direct(settings, engine, now)
