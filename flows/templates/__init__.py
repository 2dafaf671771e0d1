"""Process templates: a folder with process.yaml and emails/, validated by pydantic models.

The JSON schema of process.yaml is published with ``samverkan templates schema`` so editors
can check a template while it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.cycles import plan
from flows.settings import REPO_TEMPLATES, Settings
from flows.templates.instruments import Instrument, load_instruments
from messaging import i18n
from messaging.render import EmailTemplates, read_yaml
from store.errors import InvalidInput, NotFound, SamverkanError, TemplateError
from store.models import Cycle

LANGUAGES = ("sv", "en")
KINDS = ("email", "meeting", "followup", "reflection")
KEY = r"^[a-z][a-z0-9-]{0,39}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNLESS_RULE = re.compile(r"^(accepted|responded|answered:[a-z][a-z0-9-]*)$")


def _check_duration(value: str) -> str:
    try:
        plan.parse_duration(value)
    except InvalidInput as exc:  # pydantic reports ValueErrors with the field's location
        raise ValueError(str(exc)) from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariableSpec(_Strict):
    type: Literal["datetime", "text"] = "text"
    help: str = ""
    example: str = Field(description="A value used when the template is validated.")
    default: str | None = None


class MeetingSpec(_Strict):
    starts: str = Field(description="Name of the datetime variable holding the start.")
    duration: str = Field(default="2h", description="How long, e.g. 3h or 90m.")
    location: str | None = Field(default=None, description="Name of the text variable.")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _check_duration(value)


class StageSpec(_Strict):
    key: str = Field(pattern=KEY)
    kind: Literal["email", "meeting", "followup", "reflection"]
    template: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    at: str | None = Field(
        default=None, description="'start', the name of a datetime variable, or an ISO time."
    )
    after: str | None = None
    before: str | None = None
    offset: str = "0"
    approval: Literal["required", "none"] = "none"
    audience: str = "all"
    unless: str | None = Field(
        default=None, description="accepted | responded | answered:<stage key>"
    )
    meeting: MeetingSpec | None = None
    questions: list[str] = Field(default_factory=list)
    signoff: list[str] = Field(
        default_factory=list,
        description="Organisations that must sign what the stage sends, e.g. "
        "[Försäkringskassan, Arbetsförmedlingen] (by their names in the participants file).",
    )

    @model_validator(mode="after")
    def _shape(self) -> StageSpec:
        given = [name for name in ("at", "after", "before") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of at, after or before")
        _check_duration(self.offset)
        if self.at and self.offset != "0":
            raise ValueError("offset goes with after or before, not with at")
        if (self.kind == "meeting") != (self.meeting is not None):
            raise ValueError("a meeting stage needs a meeting: block, and only a meeting has one")
        if self.kind == "followup" and not self.questions:
            raise ValueError("a followup stage needs questions")
        if self.unless and not UNLESS_RULE.match(self.unless):
            raise ValueError("unless must be accepted, responded or answered:<stage key>")
        if self.signoff and self.kind == "reflection":
            raise ValueError("a reflection goes to the coordinator and is not signed: no signoff")
        if any(not str(name).strip() for name in self.signoff):
            raise ValueError("signoff names an empty organisation")
        return self

    @property
    def anchor(self) -> str | None:
        return self.after or self.before

    @property
    def signed_offset(self) -> timedelta:
        delta = plan.parse_duration(self.offset)
        return -delta if self.before else delta


class ProcessSpec(_Strict):
    name: str = Field(pattern=KEY)
    title: dict[Literal["sv", "en"], str]
    description: str = ""
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    stages: list[StageSpec] = Field(min_length=1)


def _tags(value: dict[str, Any], required: tuple[str, ...] = LANGUAGES) -> dict[str, Any]:
    """Keys that are language tags (BCP 47), in canonical case; Swedish and English given."""
    out = {}
    for key, text in value.items():
        try:
            out[i18n.normalise(key)] = text
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    missing = [lang for lang in required if lang not in out]
    if missing:
        raise ValueError(f"needs a text in {missing[0]} (every question has sv and en)")
    return out


class Question(_Strict):
    id: str = Field(pattern=KEY)
    kind: Literal["scale", "text"]
    text: dict[str, str] = Field(description="The question, by language tag (sv, en, fi …).")
    low: dict[str, str] | None = None
    high: dict[str, str] | None = None
    min: int = 0
    max: int = 10
    wording: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="An instrument's wording for a respondent group, by group name.",
    )
    # Set by the loader for a question of an instrument (flows/templates/instruments.py):
    # the instrument, and its translations' wording by language ({"text", "low", "high"}).
    instrument: str | None = None
    instrument_version: int | None = None
    translations: dict[str, dict[str, str]] = Field(default_factory=dict, exclude=True)

    @field_validator("text", "low", "high")
    @classmethod
    def _languages(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _tags(value)

    @field_validator("wording")
    @classmethod
    def _wording_languages(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return {group: _tags(texts, required=()) for group, texts in value.items()}

    def languages(self) -> set[str]:
        return set(self.text) | set(self.translations)

    def localised(
        self, language: str, group: str | None = None, *, fallback: str | None = None
    ) -> dict[str, Any]:
        """The question in ``language``: its own wording, a less specific one (sv for
        sv-x-easy), the cycle's fallback language, or English, in that order."""
        chain = i18n.lookup_chain(language)
        chain += [t for t in (i18n.lookup_chain(fallback) if fallback else []) if t not in chain]
        chain.append(i18n.SOURCE)
        lang = next(t for t in chain if t in self.text or t in self.translations)
        chain = chain[chain.index(lang) :]

        def pick(field: str, by_language: dict[str, str] | None) -> str:
            """The field in the question's language, else the next along the chain (the
            anchors of sv-x-easy from sv, where the easy wording has none of its own)."""
            if not by_language:
                return ""
            for t in chain:
                if t in by_language:
                    return by_language[t]
                if field in self.translations.get(t, {}):
                    return self.translations[t][field]
            return by_language[i18n.SOURCE]

        own = self.wording.get(group or "")
        text = own[lang] if own and lang in own else pick("text", self.text)
        return {
            "id": self.id,
            "kind": self.kind,
            "text": text,
            "low": pick("low", self.low),
            "high": pick("high", self.high),
            "min": self.min,
            "max": self.max,
            "language": lang,
        }


def load_questions(root: Path) -> dict[str, Question]:
    """The questions a template may ask: every YAML file in ``<root>/questions`` (the free
    library) and the questions of every instrument in ``<root>/instruments``."""
    found: dict[str, Question] = {}
    for path in sorted((root / "questions").glob("*.yaml")):
        try:
            items = read_yaml(path.read_text(encoding="utf-8")) or []
            for raw in items:
                q = Question.model_validate(raw)
                if q.instrument is not None or q.wording:
                    raise TemplateError(
                        f"{path}: question {q.id!r}: instrument and wording belong in an "
                        "instrument file (instruments/)"
                    )
                found[q.id] = q
        except (yaml.YAMLError, ValidationError, TypeError) as exc:
            raise TemplateError(f"{path}: {_first_error(exc)}") from None
    for inst in load_instruments(root, Question).values():
        for qid, q in inst.questions.items():
            if qid in found:
                raise TemplateError(
                    f"{inst.path}: question {qid!r} is also "
                    + (
                        f"in instrument {found[qid].instrument}"
                        if found[qid].instrument
                        else "in the question library"
                    )
                )
            found[qid] = q
    return found


def _questions_root(folder: Path) -> Path:
    """Where a template's questions come from: a folder beside it with questions/ or
    instruments/, or else the bundled one."""
    local = folder.parent
    if (local / "questions").is_dir() or (local / "instruments").is_dir():
        return local
    return REPO_TEMPLATES


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc).splitlines()[0]


@dataclass(frozen=True)
class ProcessTemplate:
    folder: Path
    spec: ProcessSpec
    questions: dict[str, Question]
    instruments: dict[str, Instrument]

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def emails(self) -> EmailTemplates:
        return EmailTemplates(self.folder / "emails")

    def languages(self, name: str) -> frozenset[str]:
        """The languages the email ``name`` is written in."""
        return self.emails.languages(name)

    def reading(self, name: str, language: str, fallback: str | None = None) -> str:
        """The language of the email ``name`` that serves a reader of ``language``: theirs,
        a less specific one (sv for sv-x-easy), else ``fallback`` (the cycle's)."""
        have = self.languages(name)
        found = i18n.best(language, have) or (i18n.best(fallback, have) if fallback else None)
        if found is None:
            raise TemplateError(
                f"template {self.name}: no {name} email in {language}"
                + (f" or {fallback}" if fallback else "")
                + f" (it has {', '.join(sorted(have)) or 'none'}); relaunch with "
                "--fallback-language, or add the email"
            )
        return found

    def stage(self, key: str) -> StageSpec:
        for s in self.spec.stages:
            if s.key == key:
                return s
        raise NotFound(f"template {self.name} has no stage {key!r}")


def find_template(root: Path, name_or_path: str) -> Path:
    """A template folder by name (in ``root``) or by path."""
    candidate = Path(name_or_path)
    if (candidate / "process.yaml").is_file():
        return candidate
    if "/" not in name_or_path and (root / name_or_path / "process.yaml").is_file():
        return root / name_or_path
    names = ", ".join(list_templates(root)) or "none"
    raise NotFound(f"unknown template {name_or_path!r} (available: {names})")


def list_templates(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/process.yaml"))


@dataclass(frozen=True)
class Listed:
    """One template of a templates folder: loaded, or the one line that says why not."""

    name: str
    template: ProcessTemplate | None
    problem: str | None = None


def catalogue(root: Path) -> list[Listed]:
    """Every template in ``root``, by name, as ``samverkan templates list`` shows them."""
    found = []
    for name in list_templates(root):
        try:
            found.append(Listed(name, load_template(root / name)))
        except SamverkanError as exc:
            found.append(Listed(name, None, str(exc)))
    return found


def load_template(folder: Path, *, questions_root: Path | None = None) -> ProcessTemplate:
    """Read and check a template folder: schema, anchors, emails in both languages."""
    path = folder / "process.yaml"
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no process.yaml in {folder}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {_first_error(exc)}") from None
    try:
        spec = ProcessSpec.model_validate(raw)
    except ValidationError as exc:
        raise TemplateError(f"{path}: {_first_error(exc)}") from None
    root = questions_root if questions_root is not None else _questions_root(folder)
    template = ProcessTemplate(
        folder=folder,
        spec=spec,
        questions=load_questions(root),
        instruments=load_instruments(root, Question),
    )
    _check(template, path)
    return template


def _check_languages(t: ProcessTemplate, path: Path) -> None:
    """Each email's language is a tag in its canonical case (invitation.en-GB.md.j2), and a
    language the participants' emails are written in, they are all written in: Swedish and
    English always, any other once one is (a variant such as sv-x-easy may cover some of them
    and fall back). The reflection, written for the coordinator, is checked on its own."""
    for file in sorted(t.emails.folder.glob("*.md.j2")):
        tag = file.name[: -len(".md.j2")].rsplit(".", 1)[-1]
        try:
            canonical = i18n.normalise(tag)
        except ValueError as exc:
            raise TemplateError(f"{file}: {exc}") from None
        if canonical != tag:
            raise TemplateError(f"{file}: write the language as {canonical}")
    to_participants: list[str] = []
    for s in t.spec.stages:
        if s.kind != "reflection" and s.template:
            to_participants.append(s.template)
            if s.kind == "meeting":
                to_participants += [f"{s.template}-update", f"{s.template}-cancel"]
    written = {lang for n in to_participants for lang in t.emails.languages(n) if "-" not in lang}
    for name in dict.fromkeys(to_participants):
        for lang in sorted(written - t.emails.languages(name)):
            raise TemplateError(
                f"{path}: the participants' emails are written in {lang}, but not "
                f"{t.emails.path(name, lang).name}: add it, or take out the other {lang} emails"
            )


def _check(t: ProcessTemplate, path: Path) -> None:
    keys = [s.key for s in t.spec.stages]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise TemplateError(f"{path}: stage keys used twice: {', '.join(dupes)}")
    for s in t.spec.stages:
        if s.anchor and s.anchor not in keys:
            raise TemplateError(
                f"{path}: stage {s.key!r} is anchored on unknown stage {s.anchor!r}"
            )
        if s.unless and s.unless.startswith("answered:") and s.unless[9:] not in keys:
            raise TemplateError(
                f"{path}: stage {s.key!r}: unless names unknown stage {s.unless[9:]!r}"
            )
        if s.at and s.at != "start":
            if s.at in t.spec.variables:
                if t.spec.variables[s.at].type != "datetime":
                    raise TemplateError(
                        f"{path}: stage {s.key!r}: variable {s.at!r} is not a datetime"
                    )
            else:
                try:
                    datetime.fromisoformat(s.at)
                except ValueError:
                    raise TemplateError(
                        f"{path}: stage {s.key!r}: at must be 'start', a datetime variable "
                        f"or an ISO time, not {s.at!r}"
                    ) from None
        if s.meeting:
            var = t.spec.variables.get(s.meeting.starts)
            if var is None or var.type != "datetime":
                raise TemplateError(
                    f"{path}: stage {s.key!r}: meeting starts must name a datetime variable"
                )
            if s.meeting.location and s.meeting.location not in t.spec.variables:
                raise TemplateError(
                    f"{path}: stage {s.key!r}: unknown location variable {s.meeting.location!r}"
                )
        for q in s.questions:
            if q not in t.questions:
                raise TemplateError(f"{path}: stage {s.key!r}: unknown question {q!r}")
        needed = [s.template]
        if s.kind == "meeting":
            needed += [f"{s.template}-update", f"{s.template}-cancel"]
        for name, lang in ((n, lang) for n in needed for lang in LANGUAGES):
            if not t.emails.exists(name, lang):
                raise TemplateError(
                    f"{path}: stage {s.key!r}: missing email {t.emails.path(name, lang)}"
                )
    _check_languages(t, path)
    # The anchors must not form a circle (times are irrelevant for this check).
    items = [
        plan.PlanItem(
            key=s.key,
            timing=plan.Timing(
                at=None if s.anchor else _EPOCH, anchor=s.anchor, offset=s.signed_offset
            ),
        )
        for s in t.spec.stages
    ]
    try:
        plan.resolve(items)
    except plan.PlanError as exc:
        raise TemplateError(f"{path}: {exc}") from None


def json_schema() -> dict[str, Any]:
    return ProcessSpec.model_json_schema()


def template_of(settings: Settings, cycle: Cycle) -> ProcessTemplate:
    """The template a cycle was launched from, loaded from the templates folder."""
    return load_template(find_template(settings.templates_dir, cycle.template))
