"""The commands that keep samverkan running: serve (the participants' pages), tick, deploy
and worker; and the demo, which ticks through a whole cycle."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._common import get_settings, handled, in_range, open_engine


@handled
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
) -> None:
    """Serve the participants' pages (follow-up answers, meeting RSVP, unsubscribe) and the
    coordinator's workspace at /workspace/. Set SAMVERKAN_BASE_URL to the address participants
    reach it by, so links in emails point here.

    \b
    Example:  samverkan serve --host 0.0.0.0 --port 8000
    """
    in_range("--port", port, 1, 65535)
    import uvicorn
    from sqlmodel import Session

    from flows.web.app import create_app
    from store import queries

    settings = get_settings()
    engine = open_engine(settings)  # a bad database fails here, before the server starts
    typer.echo(
        f"serving participants' pages on http://{host}:{port} (links in emails use {settings.base})"
    )
    typer.echo(f"the workspace: http://{host}:{port}/workspace/")
    with Session(engine) as session:
        if queries.count_accounts(session, role="coordinator") == 0:
            typer.echo(
                "no coordinator account yet; create one with: "
                "samverkan users add EMAIL --role coordinator"
            )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@handled
def tick(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Pretend it is this time (ISO); default: the real time"),
    ] = None,
) -> None:
    """Run every stage that is due, then deliver the outbox. Run it from cron or a loop;
    with --now you can walk a cycle through weeks in seconds.

    \b
    Example:  samverkan tick --now 2027-02-08T09:00
    """
    from flows.cycles import plan

    settings = get_settings()
    engine = open_engine(settings)  # fail on a bad database before Prefect starts
    when = (
        plan.parse_when(now, plan.zone(settings.timezone), what="--now")
        if now
        else datetime.now(UTC)
    )
    from flows.orchestration import one_shot_tick

    for line in one_shot_tick(settings, engine, when).lines():
        typer.echo(line)


@handled
def deploy(
    pool: Annotated[
        str, typer.Option("--pool", help="Prefect work pool (a 'process' pool; made if missing)")
    ] = "samverkan",
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between scheduled ticks")
    ] = 60.0,
    senders: Annotated[
        int,
        typer.Option(
            "--senders", help="Deliver runs started per stage, each with its own SMTP connections"
        ),
    ] = 2,
) -> None:
    """Register samverkan with a Prefect server: a tick every --interval seconds, one advance
    run per due cycle, and deliver runs, all on the work pool --pool; and the SMTP caps
    (SAMVERKAN_SMTP_CONCURRENCY, _RATE, _RATE_PER_MINUTE) as limits shared by every deliver
    run. Start workers on it with `samverkan worker --pool NAME`. Needs PREFECT_API_URL
    (README: 'Keeping it running').

    \b
    Example:  PREFECT_API_URL=http://127.0.0.1:4200/api samverkan deploy --pool samverkan
    """
    from flows.orchestration.deploy import register

    in_range("--interval", interval, 5, 86400, " seconds")
    done = register(pool=pool, interval=interval, senders=senders)
    made = "created" if done.created_pool else "exists"
    typer.echo(f"work pool {done.pool} ({made}, type process)")
    for name in done.deployments:
        typer.echo(f"deployment {name}")
    for line in done.limits:
        typer.echo(line)
    typer.echo(f"ticks every {done.interval:g} s; start workers: samverkan worker --pool {pool}")


@handled
def worker(
    pool: Annotated[
        str | None,
        typer.Option("--pool", help="Run a Prefect worker on this work pool (distributed mode)"),
    ] = None,
    every: Annotated[
        float, typer.Option("--every", help="Without --pool: seconds between ticks")
    ] = 60.0,
    limit: Annotated[
        int | None, typer.Option("--limit", help="With --pool: most flow runs at once")
    ] = None,
) -> None:
    """Keep samverkan running. Without --pool: tick every --every seconds in this process
    (embedded mode: Prefect starts once, not on every tick). With --pool: a Prefect worker
    that runs the deployments of `samverkan deploy` (distributed mode). Stop with Ctrl-C.

    \b
    Examples:
      samverkan worker --every 30
      PREFECT_API_URL=http://127.0.0.1:4200/api samverkan worker --pool samverkan
    """
    from flows.orchestration.deploy import preflight, run_embedded, run_pool_worker

    if pool is not None and limit is not None:
        in_range("--limit", limit, 1, 1000, " runs")
    if pool is None:
        in_range("--every", every, 1, 86400, " seconds")
    settings = get_settings()
    preflight(settings)  # store, link key and mail server, before any run is taken
    if pool is not None:
        raise typer.Exit(run_pool_worker(pool, limit, say=typer.echo))
    from flows.orchestration.flows import run_tick

    typer.echo(f"ticking every {every:g} s (Ctrl-C stops after the current tick)")
    run_embedded(every=every, say=typer.echo, tick=lambda now: run_tick(now).lines())


@handled
def demo(
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to put the demo's database and mail [default: a new folder]"
        ),
    ] = None,
) -> None:
    """Walk a whole learning cycle on an example network, in a fresh folder, with a simulated
    clock: import, launch, approve, invite, remind, follow up, reflect.

    \b
    Example:  samverkan demo
    """
    from flows.cli.demo import run_demo

    run_demo(folder, echo=typer.echo)
