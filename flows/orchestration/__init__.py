"""Prefect: the flows and tasks that run a cycle's stages, their deployments and settings."""
