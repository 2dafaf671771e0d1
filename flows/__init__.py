"""samverkan's application: the interfaces (cli/, web/), the coordinator's work on cycles,
stages, people and reports, and the Prefect flows that run it (orchestration/).

ARCHITECTURE.md at the top of the repository maps the folders and which way imports go.
Importing this package must stay cheap: Prefect is imported only by
flows/orchestration/flows.py and when a stage's Prefect task is first asked for.
"""
