"""``samverkan demo``: a whole learning cycle on an example network, in a folder of its own.

The clock is simulated (``tick --now``), so weeks pass in seconds. The participants' replies
(calendar answers and follow-up answers) are simulated too and said to be so.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flows.settings import REPO_TEMPLATES
from flows.wording import plural
from messaging.transports.maildir import delivered
from store.errors import InvalidInput

EXAMPLE = REPO_TEMPLATES / "learning-cycle" / "example" / "participants.csv"

ACCEPTING = [
    "anna.lindqvist@forsakringskassan.example",
    "maria.sandberg@arbetsformedlingen.example",
    "eva.nilsson@goteborg.example",
    "per.holm@vgregion.example",
    "tomas.wik@samordningsforbund.example",
    "sara.ahmadi@goteborg.example",
    "karin.strom@vgregion.example",
]
DECLINING = ["johan.berg@forsakringskassan.example"]
ANSWERS = {
    "anna.lindqvist@forsakringskassan.example": (6, "Vi ringer varandra innan vi fattar beslut."),
    "maria.sandberg@arbetsformedlingen.example": (5, "Gemensamma möten med deltagaren."),
    "eva.nilsson@goteborg.example": (7, "Nämnden har fått en tydligare bild."),
    "per.holm@vgregion.example": (6, "Kortare väntetid till rehabkoordinator."),
    "tomas.wik@samordningsforbund.example": (7, "Fler vågar säga vad som inte fungerar."),
    "sara.ahmadi@goteborg.example": (4, "I met one person who knew my whole story."),
    "karin.strom@vgregion.example": (6, "Vi pratar om samma människor nu."),
    "ali.hassan@arbetsformedlingen.example": (5, "Managers meet every month now."),
}


def _fresh_folder(folder: Path | None) -> Path:
    if folder is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = Path(f"samverkan-demo-{stamp}")
        n = 1
        while folder.exists():
            n += 1
            folder = Path(f"samverkan-demo-{stamp}-{n}")
    if folder.exists() and any(folder.iterdir()):
        raise InvalidInput(f"{folder} is not empty: give --dir a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _plain_text(path: Path) -> str:
    from email import message_from_bytes, policy

    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


def answer_on_their_pages(settings: Any, engine: Any, mail: Path) -> int:
    """Open each example participant's follow-up link and submit their answers, through the
    real web app (in-process, over httpx's ASGI transport)."""
    import asyncio
    import re

    import httpx

    from flows.web.app import create_app

    app = create_app(settings, engine)
    pattern = re.compile(re.escape(settings.base) + r"(/a/[A-Za-z0-9_-]+)")

    async def answer_all() -> int:
        done = 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.base) as client:
            for email, (scale, better) in ANSWERS.items():
                texts = [_plain_text(m) for m in delivered(mail / email)]
                paths = [p for t in texts for p in pattern.findall(t)]
                if not paths:
                    continue
                response = await client.post(
                    paths[-1], data={"q_scale-now": str(scale), "q_what-is-better": better}
                )
                done += response.status_code == 303
        return done

    return asyncio.run(answer_all())


SIGNING = "Försäkringskassan"
SIGNER = "signering@forsakringskassan.example"


def run_demo(folder: Path | None, *, echo: Callable[[str], None] = print) -> Path:
    began = time.monotonic()
    root = _fresh_folder(folder)
    # The demo's own store and mail: embedded defaults inside its folder, never a real relay.
    os.environ["SAMVERKAN_DATABASE_URL"] = f"sqlite:///{root / 'samverkan.db'}"
    os.environ["SAMVERKAN_MAIL_DIR"] = str(root / "mail")
    os.environ.pop("SAMVERKAN_SMTP_URL", None)
    os.environ.setdefault("SAMVERKAN_SENDER", "samverkan@samordningsforbund.example")
    os.environ.setdefault("SAMVERKAN_SENDER_NAME", "Samordningsförbundet Göteborg")
    os.environ.setdefault("SAMVERKAN_COORDINATOR_EMAIL", "tomas.wik@samordningsforbund.example")

    from flows.cycles.approve import approve_stage, stage_drafts
    from flows.cycles.launch import launch_cycle
    from flows.cycles.overview import cycle_overview
    from flows.cycles.signoff import sign, signoff_status
    from flows.people.accounts import add_account
    from flows.people.answers import record_rsvp
    from flows.people.participants import import_participants
    from flows.settings import load_settings
    from store.db import open_store

    settings = load_settings()
    engine = open_store(settings.database_url)
    tz = ZoneInfo(settings.timezone)
    echo(f"samverkan demo in {root}")
    echo("")

    result = import_participants(engine, EXAMPLE)
    echo(
        f"1. imported {result.created} participants from {EXAMPLE.name} "
        "(5 organisations, every role, Swedish and English)"
    )

    today = datetime.now(tz).replace(hour=9, minute=0, second=0, microsecond=0)
    # Start on the Monday at least three days away; the workshop is on the Wednesday
    # two weeks later, a day people can come.
    start = today + timedelta(days=3 + (7 - (today + timedelta(days=3)).weekday()) % 7)
    workshop = start + timedelta(days=16)
    # Försäkringskassan signs the invitation before it goes out in everyone's name.
    add_account(engine, email=SIGNER, role="signer", organisation=SIGNING)
    cycle_id = launch_cycle(
        engine,
        settings,
        template="learning-cycle",
        name="Lärande cykel – Göteborg",
        start=start.isoformat(),
        variables={"workshop_at": workshop.isoformat(), "location": "Stadshuset, Göteborg"},
        signoff={"invitation": [SIGNING]},
    )
    echo(
        f"2. launched cycle {cycle_id} (learning-cycle): starts {start:%Y-%m-%d %H:%M}, "
        f"workshop {workshop:%Y-%m-%d %H:%M} ({settings.timezone}); {SIGNING} signs the "
        f"invitation (its signer {SIGNER} is emailed)"
    )

    from flows.orchestration.flows import quiet_prefect, tick

    def step(label: str, when: datetime) -> None:
        report = tick(when)
        echo(f"{label} — tick at {when:%Y-%m-%d %H:%M}:")
        for _, s in report.stages:
            note = f"; {s.note}" if s.note else ""
            echo(f"     {s.key}: {s.status}, {plural(s.messages, 'message')}{note}")
        for line in report.signoff:
            echo(f"     sign-off: {line}")
        if not report.stages:
            echo("     nothing due")
        echo(f"     delivery: {report.delivery}")

    with quiet_prefect():
        echo("3. starting Prefect (embedded, local mode)…")
        step("4. the cycle starts (nothing goes out unsigned; the coordinator is told)", start)
        status = signoff_status(engine, settings, cycle_id=cycle_id, key="invitation")
        texts = ", ".join(f"{t.language} {t.short}" for t in status.texts)
        echo(f"5. {SIGNER} reads the {len(status.texts)} texts ({texts}) and signs:")
        echo(f"   {sign(engine, settings, cycle_id=cycle_id, key='invitation', email=SIGNER)}")
        drafts = stage_drafts(engine, settings, cycle_id=cycle_id, key="invitation")
        sample = drafts.drafts[0]
        echo(
            f"   the coordinator previews {len(drafts.drafts)} invitations, e.g. to "
            f"{sample.to_name}: “{sample.subject}”, and approves:"
        )
        echo(f"   {approve_stage(engine, cycle_id=cycle_id, key='invitation', settings=settings)}")
        step("6. after sign-off and approval", start + timedelta(minutes=5))
        echo(f"7. simulated calendar answers: {len(ACCEPTING)} accept, {len(DECLINING)} decline")
        for email in ACCEPTING:
            record_rsvp(engine, cycle_id=cycle_id, key="workshop", email=email, partstat="ACCEPTED")
        for email in DECLINING:
            record_rsvp(engine, cycle_id=cycle_id, key="workshop", email=email, partstat="DECLINED")
        step("8. two days before the workshop", workshop - timedelta(days=2))
        step("9. a week after the workshop", workshop + timedelta(days=7))
        answered = answer_on_their_pages(settings, engine, root / "mail")
        echo(
            f"10. {answered} participants answer on their personal pages (the links in their "
            "emails, opened in-process)"
        )
        step("11. five days later", workshop + timedelta(days=12))
        step("12. two weeks after the workshop", workshop + timedelta(days=14))

    data = cycle_overview(engine, cycle_id=cycle_id)
    echo("")
    echo(f"The plan of cycle {cycle_id} ({data['status']}):")
    for s in data["stages"]:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(s["messages"].items())) or "-"
        echo(f"  {s['key']:<18} {s['due'][:16].replace('T', ' ')}  {s['status']:<9} {counts}")
    mail = root / "mail"
    boxes = Counter({p.name: len(delivered(p)) for p in mail.iterdir()} if mail.exists() else {})
    echo("")
    echo(
        f"Where the mail went: {sum(boxes.values())} messages in {len(boxes)} Maildir folders "
        f"under {mail}"
    )
    for name, n in sorted(boxes.items()):
        echo(f"  {name:<46} {n}")
    invites = delivered(mail / "sara.ahmadi@goteborg.example")
    if len(invites) > 1:
        echo(f"Open a calendar invite in any mail program: {invites[1]}")
    from flows.reporting.report import build_report

    report_path = root / f"reflection-{cycle_id}.html"
    report_path.write_text(build_report(engine, settings, cycle_id, "html"), encoding="utf-8")
    echo("")
    echo(f"The reflection report: {report_path}")
    echo("")
    echo(f"Done in {time.monotonic() - began:.0f} s. Look around with:")
    command = sys.argv[0] if sys.argv[0].endswith("samverkan") else "samverkan"
    url = f"sqlite:///{root / 'samverkan.db'}"
    echo(f"  SAMVERKAN_DATABASE_URL={url} {command} cycle show {cycle_id}")
    return root
