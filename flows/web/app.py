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
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup
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
from messaging import i18n, links
from messaging.i18n import N_, format_datetime
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

# How the meeting page names the participant's answer.
ANSWER_WORDS = {
    "ACCEPTED": N_("you are coming"),
    "DECLINED": N_("you cannot come"),
    "TENTATIVE": N_("you might come"),
    "NEEDS-ACTION": N_("no answer yet"),
}
# The "not found" page knows nobody, so it speaks every language samverkan writes.
GONE_TITLE = N_("This page is no longer here")
GONE_TEXT = N_(
    "The link may be old, or this round has already been summed up. If you have questions, "
    "just reply to the email the link came in."
)


@pass_context
def _gettext(ctx: Context, message: str) -> str:
    return i18n.translations(ctx["lang"]).gettext(message)


@pass_context
def _ngettext(ctx: Context, singular: str, plural: str, n: int) -> str:
    return i18n.translations(ctx["lang"]).ngettext(singular, plural, n)


@pass_context
def _pgettext(ctx: Context, context: str, message: str) -> str:
    return str(i18n.translations(ctx["lang"]).pgettext(context, message))


@pass_context
def _bdi(ctx: Context, value: Any) -> Any:
    """A value (a name, a place, a date) isolated from the direction of a right-to-left page."""
    if ctx.get("dir") == "rtl" and value not in (None, ""):
        return Markup("<bdi>%s</bdi>") % value
    return value


@pass_context
def _number(ctx: Context, value: Any) -> str:
    return i18n.format_number(value, ctx["lang"])


def page_environment() -> Environment:
    """The pages' Jinja2 environment: autoescaped, with gettext from samverkan's catalogue
    (Jinja2's i18n extension) in the language of the page's ``lang``."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True, pgettext=_pgettext
    )
    env.filters.update(bdi=_bdi, number=_number)
    return env


@dataclass
class Access:
    """What a valid link opens: one participant's view of one stage."""

    session: Session
    token: AccessToken
    participant: Participant
    stage: Stage
    cycle: Cycle

    reading: str | None = None  # the wording asked for (?text=easy or plain), if any
    template: ProcessTemplate | None = None  # the cycle's, read once a request (template_for)

    @property
    def reads(self) -> str:
        """The participant's language, or the easy-to-read (or plain) variant of it the page
        was asked for."""
        return self.reading or str(self.participant.language)

    @property
    def language(self) -> str:
        """The language the page is written in: the one the person reads where samverkan
        has a catalogue in it, else the cycle's fallback, else Swedish (as the emails)."""
        shipped = i18n.shipped()
        fallback = self.cycle.fallback_language
        return (
            i18n.best(self.reads, shipped)
            or (i18n.best(fallback, shipped) if fallback else None)
            or "sv"
        )

    def gettext(self, message: str) -> str:
        return i18n.translations(self.language).gettext(message)

    def question(self, t: ProcessTemplate, qid: str) -> dict[str, Any]:
        """A question as this participant is asked it (language, respondent group)."""
        org = self.session.get(Organisation, self.participant.organisation_id)
        return asked(
            t.questions,
            t.instruments,
            qid,
            self.reads,
            organisation=org.name if org else "",
            role=str(self.participant.role),
            fallback=self.cycle.fallback_language or self.language,
        )


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
    pages = Jinja2Templates(env=page_environment())
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
            {"lang": lang, "dir": i18n.direction(lang), "a": a, **context},
            status_code=status,
        )

    def gone_page(request: Request, status: int) -> HTMLResponse:
        every = [
            {
                "lang": lang,
                "dir": i18n.direction(lang),
                "title": i18n.tr(lang, GONE_TITLE),
                "text": i18n.tr(lang, GONE_TEXT),
            }
            for lang in ["sv", *(x for x in i18n.shipped() if x != "sv" and "-x-" not in x)]
        ]
        return pages.TemplateResponse(
            request,
            "gone.html",
            {
                "lang": "sv",
                "dir": "ltr",
                "every_language": every,
                "titles": " – ".join(g["title"] for g in every if g["lang"] in ("sv", "en")),
            },
            status_code=status,
        )

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return gone_page(request, exc.status_code)

    def gone(request: Request) -> HTMLResponse:
        return gone_page(request, 404)

    def refused(request: Request, a: Access, back: str) -> HTMLResponse:
        """Not the form a browser sends (an upload, JSON, nothing): taken as no answer."""
        return render(request, "refused.html", a, status=415, back=back)

    # -- follow-up answers ----------------------------------------------------------------

    def template_for(a: Access) -> ProcessTemplate:
        """The cycle's template, read from its folder once for the request."""
        if a.template is None:
            a.template = template_of(settings, a.cycle)
        return a.template

    def questions_of(a: Access, submitted: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The questions with the saved answers, or with what was just sent when it could not
        be saved (so that nothing typed is lost)."""
        t = template_for(a)
        answers = {
            r.question_id: r
            for r in queries.answers_to_stage(
                a.session, stage_id=pk(a.stage), participant_id=pk(a.participant)
            )
        }
        found = []
        for qid in a.stage.config.get("questions", []):
            q = a.question(t, qid)
            q["dir"] = i18n.direction(q["language"])
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
        t = template_for(a)
        wrong = []
        for qid, value in submitted.items():
            q = t.questions[qid]
            if q.kind != "scale" or not value.strip():
                continue
            if not (_digits(value.strip()) and q.min <= int(value) <= q.max):
                text = a.question(t, qid)["text"]
                wrong.append(
                    a.gettext("at “%(question)s”, choose a number from %(lo)s to %(hi)s.")
                    % {"question": text, "lo": q.min, "hi": q.max}
                )
        return wrong

    def open_followup(session: Session, token: str, request: Request | None = None) -> Access:
        a = access(session, token, "answers")
        if a.stage.status != StageStatus.done or followup_closed(session, a.cycle, a.stage):
            raise Gone
        if request is not None:
            a.reading = wording_asked(a, request.query_params.get("text"))
        return a

    def easy_variant(a: Access) -> str | None:
        """The easy-to-read variant of the participant's language, where every question of
        the follow-up has a wording in it."""
        easy = f"{i18n.primary(str(a.participant.language))}-{i18n.EASY}"
        library = template_for(a).questions
        qids = a.stage.config.get("questions", [])
        have = all(easy in library[q].languages() for q in qids if q in library)
        return easy if qids and have else None

    def wording_asked(a: Access, asked_for: str | None) -> str | None:
        """?text=easy: the easy-to-read wording; ?text=plain: the usual one; else the
        participant's own language."""
        if asked_for == "easy":
            return easy_variant(a)
        if asked_for == "plain" and i18n.is_easy(str(a.participant.language)):
            return i18n.primary(str(a.participant.language))
        return None

    def other_wording(a: Access, token: str) -> dict[str, str] | None:
        """The link to the easy-to-read wording, or back to the usual one."""
        easy = easy_variant(a)
        if easy is None:
            return None
        if i18n.is_easy(a.language):
            plain = i18n.primary(a.language)
            label = i18n.tr(plain, "Read the questions in the usual wording")
            return {"href": f"/a/{token}?text=plain", "lang": plain, "label": label}
        label = i18n.tr(easy, "Read the questions in easy-to-read language")
        return {"href": f"/a/{token}?text=easy", "lang": easy, "label": label}

    def same_wording(a: Access) -> str:
        """The query that keeps the wording asked for on the next page."""
        if a.reading is None:
            return ""
        return "?text=easy" if i18n.is_easy(a.reading) else "?text=plain"

    @app.get("/a/{token}", response_class=HTMLResponse)
    def answers_page(request: Request, token: str) -> HTMLResponse:
        with Session(db()) as session:
            try:
                a = open_followup(session, token, request)
            except Gone:
                return gone(request)
            return render(
                request,
                "answers.html",
                a,
                questions=questions_of(a),
                error=None,
                other_wording=other_wording(a, token),
            )

    @app.post("/a/{token}", response_model=None)
    async def answers_post(request: Request, token: str) -> HTMLResponse | RedirectResponse:
        with Session(db()) as session:
            try:
                a = open_followup(session, token, request)
            except Gone:
                return gone(request)
            if encoding(request) != FORM:
                return refused(request, a, back=f"/a/{token}{same_wording(a)}")
            form = await request.form()
            library = template_for(a).questions
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
                    error=a.gettext("Something in the form was not right: %(error)s")
                    % {"error": " ".join(wrong)},
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
                    error=a.gettext("Something in the form was not right: %(error)s")
                    % {"error": a.gettext("please try again.")},
                )
            return RedirectResponse(f"/a/{token}/thanks{same_wording(a)}", status_code=303)

    @app.get("/a/{token}/thanks", response_class=HTMLResponse)
    def answers_thanks(request: Request, token: str) -> HTMLResponse:
        with Session(db()) as session:
            try:
                a = open_followup(session, token, request)
            except Gone:
                return gone(request)
            return render(request, "thanks.html", a, back=f"/a/{token}{same_wording(a)}")

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
            "answer": a.gettext(ANSWER_WORDS[stat]),
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
                    error=a.gettext("Please choose one of the answers: yes, no or maybe."),
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
