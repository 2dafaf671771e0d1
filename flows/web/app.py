"""The participants' pages (FastAPI + Jinja2), served by ``samverkan serve``, with the
coordinator's workspace mounted at ``/workspace`` (flows/web/workspace).

A page is reached only through a personal link: ``/a/<token>`` for a follow-up's questions,
``/r/<token>`` for a meeting's RSVP, ``/u/<token>`` to unsubscribe (the ``List-Unsubscribe``
link of every message to a participant). Only the token's SHA-256 is stored. An unknown
token, a closed follow-up, a meeting that is over or cancelled, a cycle that has ended (for
answers and RSVP) and an erased participant all get the same friendly "not found" page,
which reveals nothing. Pages work without JavaScript: the 0-10 scale is a group of radio
buttons, usable by keyboard and by screen readers.

Only the form encoding a browser sends is taken; anything else (a file upload, JSON) is
refused before anything saved is touched. Unsubscribing also takes ``multipart/form-data``,
which RFC 8058 lets mail providers use for their one-click POST.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows.people.answers import TEXT_LIMIT, save_answers, save_rsvp
from flows.people.consent import withdraw_consent
from flows.settings import Settings
from flows.templates import ProcessTemplate, template_of
from flows.templates.instruments import asked
from flows.web.workspace import create_workspace
from flows.web.workspace.core import PREFIX
from messaging import links
from messaging.render import format_datetime
from store import queries
from store.db import open_store
from store.errors import InvalidInput
from store.models import (
    AccessToken,
    Cycle,
    CycleStatus,
    Organisation,
    Participant,
    PartStat,
    Stage,
    StageStatus,
    pk,
)
from store.types import utcnow

HERE = Path(__file__).parent
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
ENDED = (CycleStatus.cancelled, CycleStatus.completed)
ANSWERS = {PartStat.accepted.value, PartStat.declined.value, PartStat.tentative.value}

TEXT = {
    "sv": {
        "send": "Skicka mina svar",
        "thanks": "Tack för dina svar!",
        "next": "Dina svar läggs ihop med allas, utan ditt namn, när vi sammanfattar "
        "omgången. Det vi lär oss tar vi med till nästa steg i samarbetet.",
        "change": "Du kan ändra dina svar här tills omgången sammanfattas.",
        "edit": "Ändra mina svar",
        "optional": "Frivilligt – svara på det du vill.",
        "intro": "Det finns inga rätta svar. Det du märker i din vardag är precis det vi "
        "behöver veta.",
        "saved": "Sparat",
        "skip": "Inget svar",
        "scale": "Välj en siffra från {lo} till {hi}",
        "rsvp": "Kommer du?",
        "yes": "Ja, jag kommer",
        "no": "Nej, jag kan inte",
        "maybe": "Kanske",
        "when": "När",
        "where": "Var",
        "rsvp_thanks": "Tack! Vi har noterat ditt svar: {answer}.",
        "answer": {
            "ACCEPTED": "du kommer",
            "DECLINED": "du kan inte komma",
            "TENTATIVE": "du kanske kommer",
            "NEEDS-ACTION": "inget svar ännu",
        },
        "now": "Ditt svar just nu: {answer}.",
        "error": "Något i formuläret stämde inte: {error}",
        "scale_error": "vid ”{question}” – välj en siffra från {lo} till {hi}.",
        "form_error": "försök gärna igen.",
        "rsvp_error": "Välj ett av svaren: ja, nej eller kanske.",
        "refused_title": "Det gick inte att ta emot",
        "refused": "Skicka dina svar med formuläret på sidan. Det du har sparat tidigare är "
        "oförändrat.",
        "back": "Tillbaka till sidan",
        "u_title": "Inga fler mejl",
        "u_ask": "Du får mejl från {sender} om {cycle}. Vill du inte ha fler? Då slutar vi "
        "skicka mejl till dig: inga fler inbjudningar, påminnelser eller frågor.",
        "u_button": "Sluta skicka mejl till mig",
        "u_keep": "Vill du fortsätta få mejl behöver du inte göra något.",
        "u_done": "Klart. Vi skickar inga fler mejl till dig. Samordnaren ser att du har "
        "avslutat. Ångrar du dig kan du svara på ett av mejlen.",
        "u_already": "Du har redan avslutat: vi skickar inga fler mejl till dig.",
        "u_refused": "Använd knappen på sidan för att avsluta.",
    },
    "en": {
        "send": "Send my answers",
        "thanks": "Thank you for your answers!",
        "next": "Your answers are put together with everyone's, without your name, when we sum "
        "up this round. What we learn goes into the next step of the collaboration.",
        "change": "You can change your answers here until the round is summed up.",
        "edit": "Change my answers",
        "optional": "Optional – answer what you like.",
        "intro": "There are no right answers. What you notice in your everyday work is "
        "exactly what we need to know.",
        "saved": "Saved",
        "skip": "No answer",
        "scale": "Choose a number from {lo} to {hi}",
        "rsvp": "Are you coming?",
        "yes": "Yes, I am coming",
        "no": "No, I cannot come",
        "maybe": "Maybe",
        "when": "When",
        "where": "Where",
        "rsvp_thanks": "Thank you! We have noted your answer: {answer}.",
        "answer": {
            "ACCEPTED": "you are coming",
            "DECLINED": "you cannot come",
            "TENTATIVE": "you might come",
            "NEEDS-ACTION": "no answer yet",
        },
        "now": "Your answer now: {answer}.",
        "error": "Something in the form was not right: {error}",
        "scale_error": "at “{question}”, choose a number from {lo} to {hi}.",
        "form_error": "please try again.",
        "rsvp_error": "Please choose one of the answers: yes, no or maybe.",
        "refused_title": "We could not take this in",
        "refused": "Please send your answers with the form on the page. What you saved before "
        "has not changed.",
        "back": "Back to the page",
        "u_title": "No more emails",
        "u_ask": "You get emails from {sender} about {cycle}. Would you rather not? Then we "
        "stop writing to you: no more invitations, reminders or questions.",
        "u_button": "Stop sending me emails",
        "u_keep": "If you want to keep getting emails, you need not do anything.",
        "u_done": "Done. We will send you no more emails. The coordinator can see that you "
        "unsubscribed. If you change your mind, you can reply to one of the emails.",
        "u_already": "You have already unsubscribed: we send you no more emails.",
        "u_refused": "Please use the button on the page to unsubscribe.",
    },
}


@dataclass
class Access:
    """What a valid link opens: one participant's view of one stage."""

    session: Session
    token: AccessToken
    participant: Participant
    stage: Stage
    cycle: Cycle

    @property
    def language(self) -> str:
        return str(self.participant.language)

    def question(self, t: ProcessTemplate, qid: str) -> dict[str, Any]:
        """A question as this participant is asked it (language, respondent group)."""
        org = self.session.get(Organisation, self.participant.organisation_id)
        return asked(
            t.questions,
            t.instruments,
            qid,
            self.language,
            organisation=org.name if org else "",
            role=str(self.participant.role),
        )

    @property
    def text(self) -> dict[str, Any]:
        return TEXT[self.language]


class Gone(Exception):
    """Unknown, closed, erased: all look the same from outside."""


def _digits(text: str) -> bool:
    """A whole number written in ASCII digits ("²" and "٣" are digits to str.isdigit)."""
    return text.isascii() and text.isdigit()


def encoding(request: Request) -> str:
    """The request body's media type, without parameters such as the charset."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def followup_closed(session: Session, cycle: Cycle, stage: Stage) -> bool:
    """A follow-up closes when the cycle's reflection has run, or the cycle has ended."""
    if cycle.status in ENDED:
        return True
    stages = queries.stages_of(session, cycle_id=stage.cycle_id)
    return any(
        s.kind == "reflection" and s.status == StageStatus.done and s.position > stage.position
        for s in stages
    )


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The participants' web app; the engine is opened lazily unless one is given."""
    app = FastAPI(title="samverkan", docs_url=None, redoc_url=None, openapi_url=None)
    pages = Jinja2Templates(directory=HERE / "templates")
    state: dict[str, Engine] = {}

    @app.middleware("http")
    async def private_pages(request: Request, call_next: Any) -> Any:
        # The URL is the participant's key: never leak it in a Referer, never cache the page,
        # allow nothing from elsewhere and no framing.
        response = await call_next(request)
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # The workspace sets its own policy (it allows its stylesheet); none is looser.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        return response

    def db() -> Engine:
        if "engine" not in state:
            state["engine"] = engine or open_store(settings.database_url)
        return state["engine"]

    def access(session: Session, token: str, purpose: str) -> Access:
        if not 20 <= len(token) <= 100:
            raise Gone
        row = queries.access_token(session, token_hash=links.token_hash(token), purpose=purpose)
        if row is None:
            raise Gone
        person = session.get(Participant, row.participant_id)
        stage = session.get(Stage, row.stage_id)
        cycle = session.get(Cycle, row.cycle_id)
        if person is None or person.erased or stage is None or cycle is None:
            raise Gone
        return Access(session, row, person, stage, cycle)

    def render(
        request: Request, name: str, a: Access | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        lang = a.language if a else "sv"
        return pages.TemplateResponse(
            request,
            name,
            {"lang": lang, "t": TEXT[lang], "a": a, **context},
            status_code=status,
        )

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return pages.TemplateResponse(
            request, "gone.html", {"lang": "sv"}, status_code=exc.status_code
        )

    def gone(request: Request) -> HTMLResponse:
        return pages.TemplateResponse(request, "gone.html", {"lang": "sv"}, status_code=404)

    def refused(request: Request, a: Access, back: str) -> HTMLResponse:
        """Not the form a browser sends (an upload, JSON, nothing): taken as no answer."""
        return render(request, "refused.html", a, status=415, back=back)

    # -- follow-up answers ----------------------------------------------------------------

    def questions_of(a: Access, submitted: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The questions with the saved answers, or with what was just sent when it could not
        be saved (so that nothing typed is lost)."""
        t = template_of(settings, a.cycle)
        answers = {
            r.question_id: r
            for r in queries.answers_to_stage(
                a.session, stage_id=pk(a.stage), participant_id=pk(a.participant)
            )
        }
        found = []
        for qid in a.stage.config.get("questions", []):
            q = a.question(t, qid)
            r = answers.get(qid)
            q["value"] = (r.scale_value if q["kind"] == "scale" else r.text) if r else None
            if submitted is not None and qid in submitted:
                given = submitted[qid]
                if q["kind"] == "scale":
                    given = int(given) if _digits(given) else None  # type: ignore[assignment]
                q["value"] = given
            found.append(q)
        return found

    def scale_errors(a: Access, submitted: dict[str, str]) -> list[str]:
        """What is wrong with the scale answers, in the participant's words and language."""
        t = template_of(settings, a.cycle)
        wrong = []
        for qid, value in submitted.items():
            q = t.questions[qid]
            if q.kind != "scale" or not value.strip():
                continue
            if not (_digits(value.strip()) and q.min <= int(value) <= q.max):
                text = a.question(t, qid)["text"]
                wrong.append(a.text["scale_error"].format(question=text, lo=q.min, hi=q.max))
        return wrong

    def open_followup(session: Session, token: str) -> Access:
        a = access(session, token, "answers")
        if a.stage.status != StageStatus.done or followup_closed(session, a.cycle, a.stage):
            raise Gone
        return a

    @app.get("/a/{token}", response_class=HTMLResponse)
    def answers_page(request: Request, token: str) -> HTMLResponse:
        with Session(db()) as session:
            try:
                a = open_followup(session, token)
            except Gone:
                return gone(request)
            return render(request, "answers.html", a, questions=questions_of(a), error=None)

    @app.post("/a/{token}", response_model=None)
    async def answers_post(request: Request, token: str) -> HTMLResponse | RedirectResponse:
        with Session(db()) as session:
            try:
                a = open_followup(session, token)
            except Gone:
                return gone(request)
            if encoding(request) != FORM:
                return refused(request, a, back=f"/a/{token}")
            form = await request.form()
            library = template_of(settings, a.cycle).questions
            submitted: dict[str, str] = {}
            for qid in a.stage.config.get("questions", []):
                raw = form.get(f"q_{qid}")
                # A question the form left out keeps its answer; an empty one clears it.
                if isinstance(raw, str):
                    submitted[qid] = raw[:TEXT_LIMIT]
            wrong = scale_errors(a, submitted)
            if wrong:
                return render(
                    request,
                    "answers.html",
                    a,
                    status=422,
                    questions=questions_of(a, submitted),
                    error=a.text["error"].format(error=" ".join(wrong)),
                )
            answers: dict[str, int | str | None] = dict(submitted)
            try:
                save_answers(
                    session,
                    stage=a.stage,
                    participant_id=a.participant.id,  # type: ignore[arg-type]
                    questions=library,
                    answers=answers,
                )
                session.commit()
            except InvalidInput:
                # Its message names internal ids; the page says it in the person's language.
                session.rollback()
                return render(
                    request,
                    "answers.html",
                    a,
                    status=422,
                    questions=questions_of(a, submitted),
                    error=a.text["error"].format(error=a.text["form_error"]),
                )
            return RedirectResponse(f"/a/{token}/thanks", status_code=303)

    @app.get("/a/{token}/thanks", response_class=HTMLResponse)
    def answers_thanks(request: Request, token: str) -> HTMLResponse:
        with Session(db()) as session:
            try:
                a = open_followup(session, token)
            except Gone:
                return gone(request)
            return render(request, "thanks.html", a, back=f"/a/{token}")

    # -- meeting RSVP ---------------------------------------------------------------------

    def open_meeting(session: Session, token: str) -> tuple[Access, Any]:
        a = access(session, token, "rsvp")
        meeting = queries.meeting_of(session, stage_id=a.stage.id)  # type: ignore[arg-type]
        if meeting is None or meeting.cancelled or meeting.ends_at < utcnow():
            raise Gone
        if a.cycle.status in ENDED:  # closed as the follow-up's answers are
            raise Gone
        return a, meeting

    def meeting_view(a: Access, meeting: Any) -> dict[str, Any]:
        tz = ZoneInfo(a.cycle.timezone)
        starts: datetime = meeting.starts_at.astimezone(tz)
        stats = queries.partstats(a.session, meeting_id=meeting.id)
        stat = stats.get(pk(a.participant), "NEEDS-ACTION")
        return {
            "when": format_datetime(starts, a.language),
            "where": meeting.location,
            "answer": a.text["answer"][stat],
            "partstat": stat,
        }

    def rsvp_view(request: Request, token: str, *, done: bool) -> HTMLResponse:
        with Session(db()) as session:
            try:
                a, meeting = open_meeting(session, token)
            except Gone:
                return gone(request)
            return render(
                request, "rsvp.html", a, m=meeting_view(a, meeting), done=done, error=None
            )

    @app.get("/r/{token}", response_class=HTMLResponse)
    def rsvp_page(request: Request, token: str) -> HTMLResponse:
        return rsvp_view(request, token, done=False)

    @app.post("/r/{token}", response_model=None)
    async def rsvp_post(request: Request, token: str) -> HTMLResponse | RedirectResponse:
        with Session(db()) as session:
            try:
                a, meeting = open_meeting(session, token)
            except Gone:
                return gone(request)
            if encoding(request) != FORM:
                return refused(request, a, back=f"/r/{token}")
            answer = (await request.form()).get("answer")
            if not isinstance(answer, str) or answer.strip().upper() not in ANSWERS:
                return render(
                    request,
                    "rsvp.html",
                    a,
                    status=422,
                    m=meeting_view(a, meeting),
                    done=False,
                    error=a.text["rsvp_error"],
                )
            try:
                save_rsvp(
                    session,
                    meeting_id=meeting.id,
                    participant_id=a.participant.id,  # type: ignore[arg-type]
                    partstat=answer,
                    cycle_id=a.cycle.id,  # type: ignore[arg-type]
                    stage_key=a.stage.key,
                    how="personal page",
                )
                session.commit()
            except InvalidInput:  # not among the meeting's attendees
                return gone(request)
            return RedirectResponse(f"/r/{token}/thanks", status_code=303)

    @app.get("/r/{token}/thanks", response_class=HTMLResponse)
    def rsvp_thanks(request: Request, token: str) -> HTMLResponse:
        return rsvp_view(request, token, done=True)

    # -- unsubscribe (RFC 8058 one-click) ---------------------------------------------------

    def unsubscribe_view(
        request: Request, a: Access, state: str, status: int = 200
    ) -> HTMLResponse:
        return render(
            request,
            "unsubscribe.html",
            a,
            status=status,
            state=state,
            sender=settings.sender_name,
        )

    @app.get("/u/{token}", response_class=HTMLResponse)
    def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
        # Only asks: link scanners and previews open links, and must not unsubscribe anyone.
        with Session(db()) as session:
            try:
                a = access(session, token, "unsubscribe")
            except Gone:
                return gone(request)
            return unsubscribe_view(request, a, "ask" if a.participant.consent else "already")

    @app.post("/u/{token}", response_class=HTMLResponse)
    async def unsubscribe_post(request: Request, token: str) -> HTMLResponse:
        # No cookie and no CSRF token are possible: a mail provider posts here on the
        # person's behalf. The token is the proof, and the one thing it can do is stop mail.
        with Session(db()) as session:
            try:
                a = access(session, token, "unsubscribe")
            except Gone:
                return gone(request)
            one_click = None
            if encoding(request) in (FORM, MULTIPART):
                async with request.form() as form:  # removes any uploaded part at once
                    one_click = form.get("List-Unsubscribe")
            if one_click != "One-Click":
                return unsubscribe_view(request, a, "refused", status=400)
            dropped = withdraw_consent(
                session,
                participant_id=pk(a.participant),
                cycle_id=pk(a.cycle),
                stage_key=a.stage.key,
                how="one-click link",
            )
            session.commit()
            return unsubscribe_view(request, a, "already" if dropped is None else "done")

    @app.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        return "ok"

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=303)

    app.mount(PREFIX, create_workspace(settings, db))
    return app
