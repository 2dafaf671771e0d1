"""Email templates: Markdown with Jinja2, rendered in a sandbox to a text and an HTML part.

A template file ``<name>.<language>.md.j2`` starts with a small front matter block::

    ---
    subject: Välkommen till {{ cycle.name }}
    ---
    Hej {{ participant.first_name }}, …

Values from participants and coordinators are data, never code or markup: Jinja2 runs in its
sandbox with ``StrictUndefined`` (a missing variable is an error, not an empty string), and
in the HTML part every value is escaped for Markdown before Markdown is turned into HTML
with raw HTML disabled. Subjects are cleaned for headers (see ``messaging.headers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, UndefinedError, pass_context
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from messaging.headers import clean_header
from store.errors import TemplateError

# Every ASCII punctuation character may be backslash-escaped in CommonMark.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~&\"'=:;$%^,/?@])")
_STRONG = re.compile(r"\*\*(?=\S)|(?<=\S)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\n]+)\)")
_FRONT = re.compile(r"\A---\r?\n(.*?)\r?\n---\r?\n(.*)\Z", re.S)

MONTHS = {
    "sv": "januari februari mars april maj juni juli augusti september oktober november december",
    "en": "January February March April May June July August September October November December",
}
WEEKDAYS = {
    "sv": "måndag tisdag onsdag torsdag fredag lördag söndag",
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
}


def _md_escape(value: Any) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())  # a value never opens a new Markdown block
    return _MD_SPECIAL.sub(r"\\\1", text)


def format_datetime(value: datetime, language: str) -> str:
    """'onsdag 10 februari 2027 kl. 09:00' / 'Wednesday 10 February 2027 at 09:00'."""
    day = WEEKDAYS[language].split()[value.weekday()]
    month = MONTHS[language].split()[value.month - 1]
    clock = value.strftime("%H:%M")
    if language == "sv":
        return f"{day} {value.day} {month} {value.year} kl. {clock}"
    return f"{day} {value.day} {month} {value.year} at {clock}"


def format_date(value: datetime, language: str) -> str:
    day = WEEKDAYS[language].split()[value.weekday()]
    month = MONTHS[language].split()[value.month - 1]
    return f"{day} {value.day} {month}"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Compiled:
    subject: Any
    text_body: Any
    md_body: Any
    extra: dict[str, Any]


def _environment(markdown: bool) -> ImmutableSandboxedEnvironment:
    # Immutable: a template cannot change the values it is given, which are shared by all
    # recipients of a stage.
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_md_escape if markdown else (lambda v: "" if v is None else v),
    )
    env.filters.update(datetime=_datetime_filter, date=_date_filter, time=_time_filter)
    return env


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

_HTML_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: Georgia, 'Times New Roman', serif; font-size: 16px; \
line-height: 1.5; color: #1f2328; max-width: 36em; margin: 0 auto; padding: 1em;">
{body}</body>
</html>
"""


@pass_context
def _datetime_filter(ctx: Context, value: datetime) -> str:
    return format_datetime(value, ctx["language"])


@pass_context
def _date_filter(ctx: Context, value: datetime) -> str:
    return format_date(value, ctx["language"])


def _time_filter(value: datetime) -> str:
    return value.strftime("%H:%M")


_TEXT_ENV = _environment(markdown=False)
_MD_ENV = _environment(markdown=True)


class EmailTemplates:
    """The emails of one process template folder, compiled once and rendered many times."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str, language: str) -> Path:
        return self.folder / f"{name}.{language}.md.j2"

    def exists(self, name: str, language: str) -> bool:
        return self.path(name, language).is_file()

    def render(self, name: str, language: str, context: dict[str, Any]) -> RenderedEmail:
        """Render one email; a missing variable or a broken template is a TemplateError."""
        compiled = _compile(self.path(name, language))
        where = f"{self.folder.parent.name}/{self.folder.name}/{name}.{language}.md.j2"
        context = {**context, "language": language}
        try:
            subject = compiled.subject.render(context)
            text = compiled.text_body.render(context)
            markdown = compiled.md_body.render(context)
        except UndefinedError as exc:
            raise TemplateError(f"{where}: {exc.message}") from None
        except JinjaTemplateError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise TemplateError(f"{where}: {exc}") from None
        subject = clean_header(subject)
        if not subject:
            raise TemplateError(f"{where}: the subject is empty")
        html = _HTML_PAGE.format(
            lang=language,
            title=escapeHtml(subject),
            body=_MD.render(markdown),
        )
        return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)

    def extra(self, name: str, language: str) -> dict[str, Any]:
        """Front-matter fields besides the subject (e.g. a calendar summary)."""
        return _compile(self.path(name, language)).extra


@lru_cache(maxsize=256)
def _compile_cached(path: str, mtime: float) -> _Compiled:
    source = Path(path).read_text(encoding="utf-8")
    match = _FRONT.match(source)
    if not match:
        raise TemplateError(f"{path}: must start with a '---' front matter block holding subject:")
    try:
        front = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: front matter is not valid YAML: {exc}") from None
    if not isinstance(front, dict) or "subject" not in front:
        raise TemplateError(f"{path}: the front matter needs a subject: line")
    body = match.group(2)
    try:
        return _Compiled(
            subject=_TEXT_ENV.from_string(str(front.pop("subject"))),
            # The text part reads as plain text: the template's **strong** markers are dropped
            # and [links](url) become "links (url)" (in the template source only; values are
            # never touched).
            text_body=_TEXT_ENV.from_string(_LINK.sub(r"\1 (\2)", _STRONG.sub("", body))),
            md_body=_MD_ENV.from_string(body),
            extra={k: _TEXT_ENV.from_string(str(v)) for k, v in front.items()},
        )
    except JinjaTemplateError as exc:
        line = getattr(exc, "lineno", None)
        at = f" (line {line})" if line else ""
        raise TemplateError(f"{path}{at}: {exc}") from None


def _compile(path: Path) -> _Compiled:
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise TemplateError(f"email template missing: {path}") from None
    return _compile_cached(str(path), mtime)


def render_extra(
    templates: EmailTemplates, name: str, language: str, key: str, context: dict[str, Any]
) -> str | None:
    """Render one extra front-matter field (text, cleaned as a header-safe line)."""
    tmpl = templates.extra(name, language).get(key)
    if tmpl is None:
        return None
    try:
        return clean_header(tmpl.render({**context, "language": language}))
    except UndefinedError as exc:
        raise TemplateError(f"{templates.path(name, language)}: {exc.message}") from None
