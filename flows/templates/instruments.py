"""Instruments: question sets whose wording is fixed, so that answers line up across years and
collaborations.

An instrument is a file ``instruments/NAME.yaml`` beside the process templates::

    id: samverkan-sf            # how exports and answers name it
    version: 1                  # a new wording is a new version
    locked: true                # the wording may not change within a version
    title: {sv: …, en: …}
    groups:                     # respondent groups, each an audience filter on role and org
      - name: service-users
        audience: role=service_user
    questions:
      - id: scale-now
        kind: scale
        text: {sv: …, en: …}
        wording:                # optional: a respondent group's own wording
          service-users: {sv: …, en: …}
        fingerprint: 5c1f…      # of the wording above; `samverkan templates fingerprint FILE`

A person belongs to the first group whose filter they match. Groups filter only on ``role``
and ``org``, so every figure of a group adds up from the organisation × role table and the
small-group protection can check both together (flows/reporting/groups.py).

A locked instrument's questions each carry the fingerprint of their wording (id, kind, range,
text, anchors, group wordings, in every language). Loading one whose wording no longer
matches is refused, naming the question: a national instrument must not be reworded without
a new version. The store also keeps the fingerprint each question had when a cycle first
asked it (``instrument_question``), so an edit that also rewrote the fingerprint is caught
at the next launch.

A translation of an instrument into another language (or its easy-to-read variant) is a file
``instruments/translations/ID.LANGUAGE.yaml``: the instrument, its version, the language, a
``review`` note, and the wording of each question. The fingerprint covers the wording the
instrument was locked with, so adding a language leaves earlier answers comparable; a
translation names the version it translates and is refused for any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.people.audience import Audience, parse_audience
from messaging import i18n
from messaging.render import read_yaml
from store.errors import InvalidInput, TemplateError

if TYPE_CHECKING:
    from flows.templates import Question

KEY = r"^[a-z][a-z0-9-]{0,39}$"
GROUP_FIELDS = {"role", "org"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Spec = TypeVar("_Spec", bound=BaseModel)


class GroupSpec(_Strict):
    name: str = Field(pattern=KEY)
    audience: str
    title: dict[str, str] = Field(default_factory=dict)


class InstrumentSpec(_Strict):
    id: str = Field(pattern=KEY)
    version: int = Field(ge=1)
    locked: bool = True
    title: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    groups: list[GroupSpec] = Field(default_factory=list)
    questions: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class Group:
    name: str
    audience: Audience
    title: dict[str, str]

    def matches(self, organisation: str, role: str) -> bool:
        values = {"role": role, "org": organisation.casefold()}
        return all(values[f] in allowed for f, allowed in self.audience.terms)


@dataclass(frozen=True)
class Instrument:
    id: str
    version: int
    locked: bool
    title: dict[str, str]
    groups: tuple[Group, ...]
    questions: dict[str, Question]
    path: Path

    def group_of(self, organisation: str, role: str) -> str | None:
        """The respondent group of a person of this organisation and role (the first that
        matches), or None."""
        for g in self.groups:
            if g.matches(organisation, role):
                return g.name
        return None


def fingerprint(question: Question) -> str:
    """The SHA-256 (first 16 hex digits) of a question's wording, as it is asked."""
    wording = question.model_dump(
        include={"id", "kind", "min", "max", "text", "low", "high", "wording"}
    )
    canonical = json.dumps(wording, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _group(spec: GroupSpec, where: str) -> Group:
    try:
        audience = parse_audience(spec.audience)
    except InvalidInput as exc:
        raise TemplateError(f"{where}: group {spec.name!r}: {exc}") from None
    odd = sorted({f for f, _ in audience.terms} - GROUP_FIELDS)
    if odd:
        raise TemplateError(
            f"{where}: group {spec.name!r} filters on {odd[0]}; respondent groups filter "
            "only on role and org"
        )
    return Group(spec.name, audience, dict(spec.title))


def load_instrument(path: Path, question_model: type[Question]) -> Instrument:
    """Read and check one instrument file; a locked one whose wording changed is refused."""
    where = str(path)
    spec = _read(path, InstrumentSpec)
    groups = tuple(_group(g, where) for g in spec.groups)
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise TemplateError(f"{where}: a respondent group is named twice")
    questions: dict[str, Question] = {}
    for i, item in enumerate(spec.questions):
        given = item.pop("fingerprint", None) if isinstance(item, dict) else None
        try:
            q = question_model.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            at = ".".join(str(p) for p in err["loc"])
            raise TemplateError(f"{where}: questions.{i}.{at}: {err['msg']}") from None
        unknown = sorted(set(q.wording) - set(names))
        if unknown:
            raise TemplateError(
                f"{where}: question {q.id!r} has wording for unknown group {unknown[0]!r}"
            )
        if q.id in questions:
            raise TemplateError(f"{where}: question {q.id!r} is listed twice")
        if spec.locked:
            actual = fingerprint(q)
            if given is None:
                raise TemplateError(
                    f"{where}: locked instrument {spec.id} version {spec.version}: question "
                    f"{q.id!r} has no fingerprint (samverkan templates fingerprint {path.name})"
                )
            if given != actual:
                raise TemplateError(
                    f"{where}: locked instrument {spec.id} version {spec.version}: the wording "
                    f"of question {q.id!r} changed (fingerprint {actual}, locked as {given}); "
                    "a locked instrument is reworded only as a new version"
                )
        questions[q.id] = q.model_copy(
            update={"instrument": spec.id, "instrument_version": spec.version}
        )
    inst = Instrument(spec.id, spec.version, spec.locked, dict(spec.title), groups, questions, path)
    for file in sorted((path.parent / "translations").glob(f"{spec.id}.*.yaml")):
        _translate(inst, file)
    return inst


class _Wording(_Strict):
    text: str = Field(min_length=1)
    low: str | None = None
    high: str | None = None


class TranslationSpec(_Strict):
    instrument: str
    version: int
    language: str
    review: str = ""
    title: str = ""
    groups: dict[str, str] = Field(default_factory=dict)
    questions: dict[str, _Wording]


@lru_cache(maxsize=64)
def _parsed(path: str, mtime_ns: int, size: int) -> Any:
    # Every command that loads a template reads every instrument and its translations; a
    # worker or the workspace reads them again for each stage and page. Kept per version of
    # the file (its time and size), as messaging/render.py keeps compiled emails.
    return read_yaml(Path(path).read_text(encoding="utf-8"))


def _read(path: Path, model: type[_Spec]) -> _Spec:
    """A YAML file read into ``model``, or a TemplateError naming the file and the field."""
    try:
        seen = path.stat()
        return model.model_validate(_parsed(str(path), seen.st_mtime_ns, seen.st_size))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        at = ".".join(str(p) for p in err["loc"])
        raise TemplateError(f"{path}: {at}: {err['msg']}" if at else err["msg"]) from None


def _translate(inst: Instrument, path: Path) -> None:
    """Add one translation file's wording to the instrument's questions and groups."""
    where = str(path)
    spec = _read(path, TranslationSpec)
    try:
        language = i18n.normalise(spec.language)
    except ValueError as exc:
        raise TemplateError(f"{where}: language: {exc}") from None
    if spec.instrument != inst.id or spec.version != inst.version:
        raise TemplateError(
            f"{where}: translates {spec.instrument} version {spec.version}, but the folder "
            f"holds {inst.id} version {inst.version}"
        )
    if path.name != f"{inst.id}.{language}.yaml":
        raise TemplateError(
            f"{where}: a translation into {language} is named {inst.id}.{language}.yaml"
        )
    missing = sorted(set(inst.questions) - set(spec.questions))
    extra = sorted(set(spec.questions) - set(inst.questions))
    if missing or extra:
        what = f"has no wording for {missing[0]!r}" if missing else f"has unknown {extra[0]!r}"
        raise TemplateError(f"{where}: {what}; a translation words every question")
    for qid, w in spec.questions.items():
        q = inst.questions[qid]
        if bool(q.low) != bool(w.low) or bool(q.high) != bool(w.high):
            raise TemplateError(f"{where}: {qid}: words the scale's anchors as the instrument does")
        q.translations[language] = w.model_dump(exclude_none=True)
    if spec.title:
        inst.title[language] = spec.title
    for g in inst.groups:
        if g.name in spec.groups:
            g.title[language] = spec.groups[g.name]


def load_instruments(root: Path, question_model: type[Question]) -> dict[str, Instrument]:
    """Every instrument in ``<root>/instruments``, by id."""
    found: dict[str, Instrument] = {}
    for path in sorted((root / "instruments").glob("*.yaml")):
        inst = load_instrument(path, question_model)
        if inst.id in found:
            raise TemplateError(
                f"{path}: instrument {inst.id!r} is also in {found[inst.id].path.name}; "
                "keep one version of an instrument in a folder"
            )
        found[inst.id] = inst
    return found


def fingerprints(path: Path, question_model: type[Question]) -> list[tuple[str, str, str | None]]:
    """(question id, its fingerprint now, the fingerprint the file gives) for every question
    of an instrument file, locked or not: what ``samverkan templates fingerprint`` prints."""
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    items = raw.get("questions") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise TemplateError(f"{path}: not an instrument (no list of questions)")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TemplateError(f"{path}: questions.{i}: not a question")
        data = {k: v for k, v in item.items() if k != "fingerprint"}
        try:
            q = question_model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            at = ".".join(str(p) for p in err["loc"])
            raise TemplateError(f"{path}: questions.{i}.{at}: {err['msg']}") from None
        out.append((q.id, fingerprint(q), item.get("fingerprint")))
    return out


def bind(
    session: Any, questions: Mapping[str, Question], chosen: list[str], *, cycle_id: int | None
) -> dict[str, list[Any]]:
    """What a follow-up stage's config records of its questions' instruments, {question id:
    [instrument, version]}; each instrument question's wording is checked against (or, the
    first time, recorded as) what earlier cycles asked under that version."""
    from store import queries

    bound: dict[str, list[Any]] = {}
    by_instrument: dict[tuple[str, int], dict[str, str]] = {}
    for qid in chosen:
        q = questions[qid]
        if q.instrument is None or q.instrument_version is None:
            continue
        bound[qid] = [q.instrument, q.instrument_version]
        by_instrument.setdefault((q.instrument, q.instrument_version), {})[qid] = fingerprint(q)
    for (inst, version), fps in sorted(by_instrument.items()):
        queries.record_wording(
            session, instrument=inst, version=version, fingerprints=fps, cycle_id=cycle_id
        )
    return bound


def asked(
    questions: Mapping[str, Question],
    instruments: Mapping[str, Instrument],
    qid: str,
    language: str,
    *,
    organisation: str,
    role: str,
    fallback: str | None = None,
) -> dict[str, Any]:
    """A question as one person is asked it: in their language (else the cycle's fallback),
    in their respondent group's own wording where the instrument has one."""
    q = questions[qid]
    inst = instruments.get(q.instrument or "")
    group = inst.group_of(organisation, role) if inst is not None else None
    return q.localised(language, group, fallback=fallback)
