"""Prefect's settings for samverkan: quiet and offline, applied before Prefect is imported."""

from __future__ import annotations

import os

# Quiet, offline defaults for Prefect; set before Prefect is imported, and only where the
# user has not chosen otherwise. Without them, runs on a machine with no internet printed
# telemetry errors and exit tracebacks.
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}
_EMBEDDED_DEFAULTS = {
    # Embedded (ephemeral) API only: no UI to serve, and no task-run recorder, whose
    # background flush produced tracebacks at process exit.
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
}


def apply_defaults() -> None:
    """Set the defaults where the user has not chosen otherwise."""
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not server_configured():
        for name, value in _EMBEDDED_DEFAULTS.items():
            os.environ.setdefault(name, value)


def server_configured() -> bool:
    """Whether a Prefect server is configured (``PREFECT_API_URL``); without one, Prefect
    starts an embedded server in the process on first use."""
    return bool(os.environ.get("PREFECT_API_URL", "").strip())
