"""Prefect flows and the coordinator's entry points.

Importing this package must stay cheap: Prefect is imported only by the modules that run
flows (cycle.py and stages/), never by the CLI at start-up.
"""
