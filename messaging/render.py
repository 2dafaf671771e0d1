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

import functools
import glob
import re
import string
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from jinja2 import StrictUndefined, UndefinedError, meta, pass_context
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import Concat
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from messaging import i18n
from messaging.headers import clean_header
from messaging.i18n import format_date, format_datetime
from store.errors import TemplateError

# Every ASCII punctuation character may be backslash-escaped in CommonMark.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!<>|~&\"'=:;$%^,/?@])")
_STRONG = re.compile(r"\*\*(?=\S)|(?<=\S)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\n]+)\)")
_FRONT = re.compile(r"\A---\r?\n(.*?)\r?\n---\r?\n(.*)\Z", re.S)


def _md_escape(value: Any) -> str:
    # Collapsed to one line: a value never opens a new Markdown block.
    return _MD_SPECIAL.sub(r"\\\1", _collapse(value))


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str = ""  # the language of the template file it was rendered from


@dataclass(frozen=True)
class _Compiled:
    subject: Any
    text_body: Any
    md_body: Any  # compiled in _MASK_ENV
    extra: dict[str, Any]
    markdown: _MaskedMarkdown
    personal: frozenset[str]  # front-matter fields that use participant or links


# What one template may build. Jinja's sandbox guards what a template may touch, not how
# much it makes: without these a line such as {{ 'A' * 1000000000 }} or {{ 9**9**9 }} takes
# the machine's memory while a template is validated. Each value (a string, a list) holds at
# most MAX_SIZE characters or items, each number at most MAX_INT_BITS bits (about the 4,300
# digits Python prints), each rendered part at most MAX_OUTPUT characters.
MAX_SIZE = 1_000_000
MAX_INT_BITS = 14_000
MAX_OUTPUT = 1_000_000
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SIZED = (str, bytes, list, tuple)


def _too_large(what: str) -> SecurityError:
    return SecurityError(f"the template builds too large a value ({what})")


def _check_size(value: Any) -> Any:
    if isinstance(value, _SIZED) and len(value) > MAX_SIZE:
        raise _too_large(f"more than {MAX_SIZE} characters or items")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _too_large(f"a number of more than {MAX_INT_BITS} bits")
    return value


def _check_amount(value: Any) -> None:
    """A number that says how much to make (a width, a count) is at most MAX_SIZE."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
        raise _too_large(f"{value} is more than {MAX_SIZE}")


def _check_printf(fmt: str, args: Any) -> None:
    for width, precision in _PRINTF.findall(fmt):
        for n in (width, precision):
            if n == "*":
                for arg in args if isinstance(args, tuple) else (args,):
                    _check_amount(arg)
            elif n:
                _check_amount(int(n))


def _check_format(fmt: str, args: Any) -> None:
    """str.format: widths in the format, or taken from the arguments ({:{width}})."""
    try:
        specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
    except ValueError:
        return  # str.format reports it
    for spec in specs:
        for n in re.findall(r"\d+", spec):
            _check_amount(int(n))
        if "{" in spec:
            for arg in args:
                _check_amount(arg)


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        times = len(text) + 1 if not old else text.count(old)
        if len(text) + times * (len(new) - len(old)) > MAX_SIZE:
            raise _too_large(f"more than {MAX_SIZE} characters")


def _check_join(separator: Any, items: list[Any]) -> None:
    size = sum(len(i) if isinstance(i, _SIZED) else 1 for i in items)
    if size + len(str(separator)) * max(len(items) - 1, 0) > MAX_SIZE:
        raise _too_large(f"more than {MAX_SIZE} characters")


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 0 if _PassArg.from_obj(func) is None else 1  # the context Jinja passes first

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[skip], args[skip + 1 :]
        for arg in (*rest, *kwargs.values()):
            _check_amount(arg)
        if name == "join":
            value = list(value)
            args = (*args[:skip], value, *rest)
            _check_join(rest[0] if rest else kwargs.get("d", ""), value)
        elif name == "replace" and len(rest) >= 2:
            _check_replace(str(value), rest[0], rest[1])
        elif name == "format":
            _check_printf(str(value), tuple(rest))
        elif name == "indent":
            width = rest[0] if rest else kwargs.get("width", 4)
            if isinstance(width, int):
                _check_amount(str(value).count("\n") * width)
        return _check_size(func(*args, **kwargs))

    return bounded


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before it is computed, a result larger than the limits."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and isinstance(n, int) and len(seq) * n > MAX_SIZE:
                raise _too_large(f"more than {MAX_SIZE} characters or items")
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise _too_large(f"a number of more than {MAX_INT_BITS} bits")
    elif operator == "**" and ints and abs(left) > 1 and right > 0:
        if right > MAX_INT_BITS or right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise _too_large(f"a number of more than {MAX_INT_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right)
    elif operator == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
        _check_amount(len(left) + len(right))


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        # a ~ b: the only way to build a string that is not an operator or a call
        self.write("environment.check_size(")
        super().visit_Concat(node, frame)
        self.write(")")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with a limit on how much a template may build (see MAX_SIZE)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    check_size = staticmethod(_check_size)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            for arg in (*args, *kwargs.values()):
                _check_amount(arg)
            name = getattr(__obj, "__name__", "")
            if name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
            elif name == "join" and args:
                items = list(args[0])
                _check_join(owner, items)
                args = (items, *args[1:])
            elif name == "expandtabs":
                width = args[0] if args else kwargs.get("tabsize", 8)
                if isinstance(width, int):
                    _check_amount(owner.count("\t") * width)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        @wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, (*args, *kwargs.values()))
            return _check_size(wrapped(*args, **kwargs))

        return bounded


def _render(template: Any, context: dict[str, Any]) -> str:
    """Render with the output capped at MAX_OUTPUT characters."""
    parts: list[str] = []
    size = 0
    for part in template.generate(context):
        size += len(part)
        if size > MAX_OUTPUT:
            raise _too_large(f"an email longer than {MAX_OUTPUT} characters")
        parts.append(part)
    return "".join(parts)


def _environment(finalize: Any) -> ImmutableSandboxedEnvironment:
    # Immutable: a template cannot change the values it is given, which are shared by all
    # recipients of a stage.
    env = _BoundedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=finalize,
    )
    env.filters.update(datetime=_datetime_filter, date=_date_filter, time=_time_filter)
    env.filters.update({name: _bounded_filter(name, f) for name, f in env.filters.items()})
    return env


def _collapse(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


@dataclass(frozen=True)
class _Shape:
    html: str  # the masked text as HTML
    present: frozenset[int]  # the markers in the masked text
    suspect: frozenset[int]  # markers that did not come out as they went in
    line_start: frozenset[int]  # markers at the start of a line
    in_url: frozenset[int]  # markers that came out percent-encoded (in a link's address)
    in_tag: frozenset[int]  # markers inside an HTML tag (a link's title, an image's alt)


def _marker(i: int) -> str:
    return f"{_MARK_OPEN}{i}{_MARK_CLOSE}"


class _MaskedMarkdown:
    """Markdown to HTML for many recipients of one template (see ``_mask`` below)."""

    def __init__(self, size: int = 64, *, rtl: bool = False) -> None:
        self.size = size
        # In a right-to-left email each value is isolated (<bdi>, or the Unicode isolates
        # where it goes into the Markdown text), except in a link's address and at the start
        # of a line, where an isolate would change what the Markdown means.
        self.rtl = rtl
        self._shapes: dict[str, _Shape] = {}
        # (masked text, markers to fill in, their values) -> the text with them filled in
        self._refined: dict[tuple[str, tuple[int, ...], tuple[str, ...]], str] = {}

    def _shape(self, masked: str) -> _Shape:
        found = self._shapes.get(masked)
        if found is None:
            html = _MD.render(masked)
            present = {int(i) for i in _MARKER.findall(masked)}
            in_code = {
                int(i)
                for span in re.findall(r"<code[^>]*>.*?</code>", html, flags=re.S)
                for i in _MARKER.findall(span)
            }
            plain = unquote(html)  # a marker in a URL comes out percent-encoded
            in_url = {i for i in present if plain.count(_marker(i)) != html.count(_marker(i))}
            suspect = in_url | {
                i
                for i in present
                if i in in_code or html.count(_marker(i)) != masked.count(_marker(i))
            }
            line_start = {int(i) for i in _LINE_START_MARKER.findall(masked)}
            in_tag = {int(i) for tag in _TAG.findall(html) for i in _MARKER.findall(tag)}
            if len(self._shapes) >= self.size:
                self._shapes.clear()
            found = self._shapes[masked] = _Shape(
                html,
                frozenset(present),
                frozenset(suspect),
                frozenset(line_start),
                frozenset(in_url),
                frozenset(in_tag),
            )
        return found

    def html(self, masked: str, values: list[Any]) -> str:
        if self.rtl:  # no value's own direction controls reach a right-to-left email
            values = [i18n.strip_bidi(_collapse(v)) for v in values]
        texts = [_collapse(v) for v in values]
        for _ in range(2):
            shape = self._shape(masked)
            keep = {
                i
                for i in shape.present - shape.suspect
                if _stands_alone(texts[i], at_line_start=i in shape.line_start)
            }
            if keep == shape.present:
                return _MARKER.sub(functools.partial(self._put, texts, shape), shape.html)
            # Put the values that cannot stand in for a marker into the text itself (links
            # are the same for every recipient, so this shape is shared as well), and look
            # again.
            put = tuple(sorted(shape.present - keep))
            key = (masked, put, tuple(_md_escape(values[i]) for i in put))
            refined = self._refined.get(key)
            if refined is None:
                if len(self._refined) >= self.size:
                    self._refined.clear()
                refined = self._refined[key] = _unmask(
                    masked, values, keep=keep, isolated=self._isolated(shape, texts)
                )
            masked = refined
        shape = self._shape(masked)
        return _MD.render(_unmask(masked, values, isolated=self._isolated(shape, texts)))

    def _put(self, texts: list[str], shape: _Shape, m: re.Match[str]) -> str:
        i = int(m.group(1))
        text = escapeHtml(texts[i])
        if self.rtl and text and i not in shape.in_tag:
            return f"<bdi>{text}</bdi>"
        return text

    def _isolated(self, shape: _Shape, texts: list[str]) -> frozenset[int]:
        """The markers whose values go into the Markdown between isolates: not in a link's
        address or a tag's attribute, and not a number that starts a line (a list's 1.)."""
        if not self.rtl:
            return frozenset()
        numbering = {i for i in shape.line_start if texts[i].isdigit()}
        return shape.present - shape.in_url - shape.in_tag - numbering


def _unmask(
    masked: str,
    values: list[Any],
    *,
    keep: set[int] | None = None,
    isolated: frozenset[int] = frozenset(),
) -> str:
    """The Markdown with the values (escaped) in place of their markers, except ``keep``;
    those in ``isolated`` between the Unicode isolates."""

    def put(m: re.Match[str]) -> str:
        i = int(m.group(1))
        if keep and i in keep:
            return m.group(0)
        escaped = _md_escape(values[i])
        return i18n.isolate(escaped) if i in isolated else escaped

    return _MARKER.sub(put, masked)


def _stands_alone(text: str, *, at_line_start: bool) -> bool:
    """Whether this value, as a marker would, leaves the Markdown around it as it is."""
    return bool(
        text
        and text.isprintable()
        and text[-1].isalnum()
        and (text[0].isalpha() or (text[0].isdigit() and not at_line_start))
    )


def markdown_html(template: Any, masked: _MaskedMarkdown, context: dict[str, Any]) -> str:
    """The HTML of a Markdown template rendered with ``context`` (values escaped)."""
    values: list[Any] = []
    token = _masked_values.set(values)
    try:
        text = _render(template, context)
    finally:
        _masked_values.reset(token)
    return masked.html(text, values)


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

_HTML_PAGE = """<!DOCTYPE html>
<html lang="{lang}" dir="{dir}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: Georgia, 'Times New Roman', serif; font-size: 16px; \
line-height: 1.5; color: #1f2328; max-width: 36em; margin: 0 auto; padding: 1em;">
<div lang="{lang}" dir="{dir}">
{body}</div>
</body>
</html>
"""


@pass_context
def _datetime_filter(ctx: Context, value: datetime) -> str:
    return format_datetime(value, ctx["language"])


@pass_context
def _date_filter(ctx: Context, value: datetime) -> str:
    return format_date(value, ctx["language"])


@pass_context
def _time_filter(ctx: Context, value: datetime) -> str:
    return i18n.format_time(value, ctx["language"])


# The Markdown body is rendered with every value replaced by a marker (``_mask``), and the
# values kept aside. Markdown is then turned into HTML once per distinct masked text (per
# template and language, as a rule) and each recipient's values are put into the HTML: the
# same HTML as converting each recipient's own Markdown wherever a value cannot change how
# the text around it is read. ``_MaskedMarkdown`` checks that for every value:
#   - the value, whitespace collapsed, is printable, starts with a letter (or a digit, when
#     not at the start of a line: "1." there would begin a list) and ends with a letter or
#     digit, so it takes part in emphasis and line rules exactly as the marker does;
#   - its marker comes out of Markdown once per place it went in, not inside code and not
#     percent-encoded in a link.
# A value that fails is put into the text before converting it (links are the same for
# every recipient, so that text is shared too); if still in doubt, the recipient's own
# Markdown is converted. Converting Markdown was about 60% of drafting a stage; a property
# test compares both ways.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARKER = re.compile("\ue000(\\d+)\ue001")
_TAG = re.compile(r"<[^>]*>")
_LINE_START_MARKER = re.compile("(?:^|\n)[ \t]*\ue000(\\d+)\ue001")
_masked_values: ContextVar[list[Any]] = ContextVar("masked_values")


def _isolated_text(value: Any) -> str:
    """A value in the text part of a right-to-left email: isolated, but for a web address,
    which a mail client makes a link of (an isolate would end up in the link)."""
    text = str(value)
    if text.startswith(("http://", "https://", "mailto:")):
        return i18n.strip_bidi(text)
    return i18n.isolate(text)


def _mask(value: Any) -> str:
    values = _masked_values.get()
    values.append(value)
    return _marker(len(values) - 1)


_TEXT_ENV = _environment(lambda v: "" if v is None else v)
# The text part of a right-to-left email: each value between the Unicode isolates.
_TEXT_ENV_RTL = _environment(lambda v: "" if v is None else _isolated_text(v))
_PERSONAL = {"participant", "links"}  # the context values that differ between recipients
_MASK_ENV = _environment(_mask)


# What a template's own code can raise while rendering (1/0, range(10**9), 'a' - 1 …).
_RENDER_ERRORS = (
    JinjaTemplateError,
    TypeError,
    ValueError,
    AttributeError,
    LookupError,
    ArithmeticError,
    RecursionError,  # a macro that calls itself
)


class EmailTemplates:
    """The emails of one process template folder, compiled once and rendered many times."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str, language: str) -> Path:
        return self.folder / f"{name}.{language}.md.j2"

    def exists(self, name: str, language: str) -> bool:
        return self.path(name, language).is_file()

    def languages(self, name: str) -> frozenset[str]:
        """The language tags of the files ``<name>.<language>.md.j2``."""
        try:
            mtime = self.folder.stat().st_mtime
        except FileNotFoundError:
            return frozenset()
        return _languages(str(self.folder), name, mtime)

    def render(
        self,
        name: str,
        language: str,
        context: dict[str, Any],
        shared: dict[tuple[str, str, str], str] | None = None,
    ) -> RenderedEmail:
        """Render one email; a missing variable or a broken template is a TemplateError.

        ``shared``: where a caller rendering many recipients with the same values besides
        ``participant`` and ``links`` (one stage run) keeps a subject that uses neither, so
        it is rendered once per language.
        """
        compiled = _compile(self.path(name, language))
        where = f"{self.folder.parent.name}/{self.folder.name}/{name}.{language}.md.j2"
        context = {**context, "language": language}
        try:
            key = (name, language, "subject")
            if shared is not None and "subject" not in compiled.personal:
                if key not in shared:
                    shared[key] = _render(compiled.subject, context)
                subject = shared[key]
            else:
                subject = _render(compiled.subject, context)
            text = _render(compiled.text_body, context)
            body = markdown_html(compiled.md_body, compiled.markdown, context)
        except UndefinedError as exc:
            raise TemplateError(f"{where}: {exc.message}") from None
        except _RENDER_ERRORS as exc:
            raise TemplateError(f"{where}: {exc}") from None
        subject = clean_header(subject)
        if not subject:
            raise TemplateError(f"{where}: the subject is empty")
        html = _HTML_PAGE.format(
            lang=language,
            dir=i18n.direction(language),
            title=escapeHtml(subject),
            body=body,
        )
        return RenderedEmail(
            subject=subject, text=text.strip() + "\n", html=html, language=language
        )

    def extra(self, name: str, language: str) -> dict[str, Any]:
        """Front-matter fields besides the subject (e.g. a calendar summary)."""
        return _compile(self.path(name, language)).extra

    def personal(self, name: str, language: str, field: str) -> bool:
        """Whether a front-matter field uses ``participant`` or ``links``."""
        return field in _compile(self.path(name, language)).personal


@lru_cache(maxsize=1024)
def _languages(folder: str, name: str, mtime: float) -> frozenset[str]:
    suffix = ".md.j2"
    return frozenset(
        p.name[len(name) + 1 : -len(suffix)]
        for p in Path(folder).glob(f"{glob.escape(name)}.*{suffix}")
        if "." not in p.name[len(name) + 1 : -len(suffix)]
    )


# libyaml's loader where PyYAML was built with it (the wheels are): the bundled templates'
# YAML, 9 KB, loads in 2 ms instead of 18 ms, and every command that reads a template reads
# all of it. Measured with the same files through yaml.SafeLoader and yaml.CSafeLoader; both
# give the same values (tests/unit/test_templates.py checks it on every bundled file).
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text: str) -> Any:
    """YAML text as Python values, with only the safe tags (like ``yaml.safe_load``)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


@lru_cache(maxsize=256)
def _compile_cached(path: str, mtime: float) -> _Compiled:
    source = Path(path).read_text(encoding="utf-8")
    match = _FRONT.match(source)
    if not match:
        raise TemplateError(f"{path}: must start with a '---' front matter block holding subject:")
    try:
        front = read_yaml(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: front matter is not valid YAML: {exc}") from None
    if not isinstance(front, dict) or "subject" not in front:
        raise TemplateError(f"{path}: the front matter needs a subject: line")
    body = match.group(2)
    if _MARK_OPEN in source or _MARK_CLOSE in source:
        raise TemplateError(f"{path}: contains the reserved characters U+E000 or U+E001")
    # <name>.<language>.md.j2: the language says the direction of the text part's values.
    rtl = i18n.direction(Path(path).name.rsplit(".", 3)[-3]) == "rtl"
    text_env = _TEXT_ENV_RTL if rtl else _TEXT_ENV
    try:
        personal = frozenset(
            field
            for field, value in front.items()
            if meta.find_undeclared_variables(_TEXT_ENV.parse(str(value))) & _PERSONAL
        )
        return _Compiled(
            subject=_TEXT_ENV.from_string(str(front.pop("subject"))),
            # The text part reads as plain text: the template's **strong** markers are dropped
            # and [links](url) become "links (url)" (in the template source only; values are
            # never touched).
            text_body=text_env.from_string(_LINK.sub(r"\1 (\2)", _STRONG.sub("", body))),
            md_body=_MASK_ENV.from_string(body),
            extra={k: text_env.from_string(str(v)) for k, v in front.items()},
            markdown=_MaskedMarkdown(rtl=rtl),
            personal=personal,
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
        text = _render(tmpl, {**context, "language": language})
        if i18n.direction(language) == "rtl":
            # A calendar has no dir attribute: the mark sets the direction, the values are
            # isolated in it.
            cleaned = clean_header(text, keep=i18n.BIDI_KEEP)
            return i18n.RLM + cleaned if cleaned else cleaned
        return clean_header(text)
    except UndefinedError as exc:
        raise TemplateError(f"{templates.path(name, language)}: {exc.message}") from None
    except _RENDER_ERRORS as exc:
        raise TemplateError(f"{templates.path(name, language)}: {exc}") from None
