"""Languages: BCP 47 tags, samverkan's message catalogue, text direction, and dates and numbers.

Every text samverkan itself writes for people to read (the participants' pages, the
unsubscribe page, the report, role and status labels, the signers' mail) is an English
message id in ``messaging/locale/<language>/LC_MESSAGES/samverkan.po``, translated per
language. ``make install`` compiles the ``.po`` files (``python -m messaging.i18n``); where a
compiled ``.mo`` is missing or older than its ``.po`` (a checkout between edits), the ``.po``
is compiled in memory.
README.md, "Languages", says how to add a language.

A participant's language is a BCP 47 tag (``sv``, ``fi``, ``ar``, ``en-GB``). Easy-to-read text
is the private-use variant ``x-easy`` of a language (``sv-x-easy``): where a text has no such
variant, it falls back to the plain language along RFC 4647 "lookup" (``sv-x-easy`` → ``sv``).
Dates, times, numbers and plural forms come from Babel (CLDR) for the language; how a date
and time are put together is itself a message of the catalogue (``pgettext("date and
time", …)``), so each language says it in its own words.
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babel import Locale
    from babel.support import NullTranslations, Translations

# Babel is imported where it is used: a command that writes nobody a text (cycle show, cycle
# list) does not pay for it (about 40 ms, in python -X importtime -c "import babel.support").

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "samverkan"
SOURCE = "en"  # the message ids are English
EASY = "x-easy"  # the private-use subtags of an easy-to-read variant: sv-x-easy
MAX_TAG = 32  # characters: what the store keeps of a person's language

# Well-formed tags of RFC 5646 as samverkan meets them: a language, then an optional script,
# region and variants, then private-use subtags (grandfathered tags are not accepted).
_TAG = re.compile(
    r"^[a-z]{2,3}(-[a-z]{4})?(-(?:[a-z]{2}|\d{3}))?(-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*"
    r"(-x(-[a-z\d]{1,8})+)?$",
    re.IGNORECASE,
)

# Where a language's own CLDR data is not what samverkan's texts mean by it: the English texts
# are written for readers in Europe (day before month, a 24-hour clock).
_FORMAT_LOCALE = {"en": "en_GB"}

# Isolates (Unicode's bidirectional algorithm, UAX #9): a value inside them is laid out on its
# own, so a Latin name, a date or a number in an Arabic sentence neither takes the sentence's
# direction nor pulls the punctuation around it to the wrong side. HTML uses <bdi>.
FSI, PDI = "\u2068", "\u2069"
RLM = "\u200f"  # the right-to-left mark: starts a plain text (a calendar title) right to left
# Every character that changes the direction of text: a value loses its own before it is
# isolated, so that nothing in it can end the isolate or turn the text around it.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
BIDI_KEEP = frozenset({FSI, PDI, RLM})


def normalise(tag: str) -> str:
    """A BCP 47 tag in its canonical case (``SV`` → ``sv``, ``en_gb`` → ``en-GB``), or
    ValueError naming what is wrong."""
    given = str(tag).strip().replace("_", "-")
    if not _TAG.match(given):
        raise ValueError(f"{tag!r} is not a language tag (BCP 47, e.g. sv, fi, ar, sv-x-easy)")
    if len(given) > MAX_TAG:
        raise ValueError(f"{tag!r} is longer than {MAX_TAG} characters")
    parts = given.split("-")
    out = [parts[0].lower()]
    private = False
    for part in parts[1:]:
        if private or part.lower() == "x":
            private = True
            out.append(part.lower())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) == 2 or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def lookup_chain(tag: str) -> list[str]:
    """The tags to try for ``tag``, most specific first (RFC 4647, section 3.4)."""
    chain = []
    parts = tag.split("-")
    while parts:
        chain.append("-".join(parts))
        parts.pop()
        if parts and len(parts[-1]) == 1:  # a singleton (x) does not stand alone
            parts.pop()
    return chain


def best(tag: str, available: Collection[str]) -> str | None:
    """The most specific of ``available`` that serves ``tag``, or None."""
    return next((t for t in lookup_chain(tag) if t in available), None)


def primary(tag: str) -> str:
    """The language subtag: ``sv`` for ``sv-x-easy``."""
    return tag.split("-", 1)[0].lower()


def is_easy(tag: str) -> bool:
    return tag.lower().endswith("-" + EASY)


@lru_cache(maxsize=64)
def babel_locale(tag: str) -> Locale:
    """The CLDR locale that formats dates and numbers for ``tag`` (English for one CLDR does
    not know)."""
    from babel import Locale, UnknownLocaleError

    public = tag.split("-x-", 1)[0]
    name = _FORMAT_LOCALE.get(public, public).replace("-", "_")
    try:
        return Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(primary(tag))
        except (UnknownLocaleError, ValueError):
            return Locale.parse(_FORMAT_LOCALE[SOURCE])


def direction(tag: str) -> str:
    """``rtl`` for a language written right to left (Arabic, Persian, Hebrew …), else ``ltr``."""
    return "rtl" if babel_locale(tag).character_order == "right-to-left" else "ltr"


def strip_bidi(text: str) -> str:
    """``text`` without the characters that change direction (a value's own overrides)."""
    return _BIDI_CONTROLS.sub("", text)


def isolate(text: str) -> str:
    """``text`` between the Unicode isolates (plain text in a right-to-left message), its own
    direction controls removed."""
    text = strip_bidi(text)
    return f"{FSI}{text}{PDI}" if text else text


@lru_cache(maxsize=1)  # read once per process, as the catalogues are (translations below)
def shipped() -> tuple[str, ...]:
    """The languages samverkan's own texts are written in: English and each catalogue."""
    found = {
        p.parent.parent.name.replace("_", "-")
        for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")
    }
    return tuple(sorted(found | {SOURCE}))


def _load(folder: Path, tag: str) -> Translations:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    po = folder / f"{DOMAIN}.po"
    mo = folder / f"{DOMAIN}.mo"
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as fp:
            return Translations(fp, domain=DOMAIN)
    with po.open("rb") as fp:
        catalog = read_po(fp, locale=babel_locale(tag))
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out, as pybabel compile does
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@lru_cache(maxsize=64)
def translations(tag: str) -> NullTranslations:
    """The catalogue for ``tag``: its own, then each less specific one, then the English
    message ids. ``sv-x-easy`` reads Swedish where it has no easy-to-read message."""
    from babel.support import NullTranslations

    found: NullTranslations | None = None
    last: NullTranslations | None = None
    for name in lookup_chain(tag):
        folder = LOCALE_DIR / name.replace("-", "_") / "LC_MESSAGES"
        if name == SOURCE or not (folder / f"{DOMAIN}.po").is_file():
            continue
        loaded = _load(folder, name)
        if found is None:
            found = loaded
        else:
            assert last is not None
            last.add_fallback(loaded)
        last = loaded
    return found or NullTranslations()


def tr(tag: str, message: str) -> str:
    """``message`` in ``tag`` (the catalogue's extraction reads ``tr(…, "message")``)."""
    return str(translations(tag).gettext(message))


def N_(message: str) -> str:  # the name gettext's tools look for
    """Marks a message for the catalogue where it is defined; translated where it is used."""
    return message


def NP_(context: str, message: str) -> str:
    """N_ for a message with a context (``pgettext(context, message)`` where it is used)."""
    return message


def has_catalogue(tag: str) -> bool:
    """Whether samverkan's own texts are written in ``tag`` (or a less specific language)."""
    return any(
        name == SOURCE or (LOCALE_DIR / name.replace("-", "_") / "LC_MESSAGES").is_dir()
        for name in lookup_chain(tag)
    )


# How a date, a date with its time, and a time read in each language: CLDR patterns, with the
# names of months and weekdays and the digits taken from the language's locale. A language
# samverkan has no catalogue for (a template's own, say) gets CLDR's own long formats.
def _pattern(tag: str, which: str) -> str:
    if not has_catalogue(tag):
        return _cldr_pattern(tag, which)
    catalogue = translations(tag)
    if which == "datetime":
        return str(catalogue.pgettext("date and time", "EEEE d MMMM y 'at' HH:mm"))
    if which == "date":
        return str(catalogue.pgettext("date", "EEEE d MMMM"))
    return str(catalogue.pgettext("time", "HH:mm"))


@lru_cache(maxsize=64)
def _cldr_pattern(tag: str, which: str) -> str:
    from babel import dates as _dates

    locale = babel_locale(tag)
    time = str(_dates.get_time_format("short", locale).pattern)
    if which == "time":
        return time
    day = str(_dates.get_date_format("full", locale).pattern)
    return str(_dates.get_datetime_format("full", locale)).replace("{1}", day).replace("{0}", time)


def format_datetime(value: datetime, tag: str) -> str:
    """'onsdag 10 februari 2027 kl. 09:00', 'Wednesday 10 February 2027 at 09:00': the time
    as it reads on the wall clock of ``value``'s zone."""
    return _format(value.replace(tzinfo=None), tag, "datetime")


def format_date(value: datetime, tag: str) -> str:
    """'onsdag 10 februari', 'Wednesday 10 February'."""
    return _format(value.replace(tzinfo=None), tag, "date")


# Cached on the wall-clock time, not the instant: 09:00 in Stockholm and 10:00 in Helsinki
# are one instant (equal as aware datetimes) but two texts.
@lru_cache(maxsize=1024)  # a stage formats the same few times for every recipient
def _format(wall: datetime, tag: str, which: str) -> str:
    from babel import dates as _dates

    if which == "date" and not has_catalogue(tag):  # CLDR's own weekday, day and month
        return str(_dates.format_skeleton("MMMMEEEEd", wall, locale=babel_locale(tag)))
    return _dates.format_datetime(wall, _pattern(tag, which), locale=babel_locale(tag))


def format_time(value: datetime, tag: str) -> str:
    return _format(value.replace(tzinfo=None), tag, "time")


def format_number(value: float | int, tag: str, *, decimals: int | None = None) -> str:
    """A number as the language writes it: 7,5 in Swedish, 7.5 in English."""
    from babel import numbers as _numbers

    if decimals is None:
        return _numbers.format_decimal(value, locale=babel_locale(tag))
    fmt = "#,##0" + ("." + "0" * decimals if decimals else "")
    return _numbers.format_decimal(value, format=fmt, locale=babel_locale(tag))


def format_percent(value: float, tag: str) -> str:
    """0.42 as '42 %' in Swedish, '42%' in English."""
    from babel import numbers as _numbers

    return _numbers.format_percent(value, locale=babel_locale(tag))


def language_name(tag: str, in_language: str = SOURCE) -> str:
    """``tag`` named in ``in_language``: 'Finnish', 'Swedish (easy to read)'."""
    from babel import Locale, UnknownLocaleError

    try:
        name = Locale.parse(tag.split("-x-", 1)[0].replace("-", "_")).get_display_name(
            babel_locale(in_language)
        )
    except (UnknownLocaleError, ValueError):
        name = tag
    if is_easy(tag):
        easy = tr(in_language, "easy to read")
        return f"{name} ({easy})"
    return name or tag


def offered() -> list[str]:
    """The languages a coordinator can choose for a person: each of samverkan's catalogues,
    and the easy-to-read variants that have one."""
    return sorted(shipped(), key=lambda t: (primary(t) != "sv", t))


def translated(tree: Any, tag: str) -> Any:
    """A dict (or tuple) of N_-marked messages with each message translated into ``tag``."""
    if isinstance(tree, dict):
        return {k: translated(v, tag) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(translated(v, tag) for v in tree)
    return translations(tag).gettext(tree) if isinstance(tree, str) else tree


def compile_catalogues() -> list[Path]:
    """Compile every ``.po`` to its ``.mo`` (``make install``; pybabel's own compile cannot
    name a folder for an easy-to-read variant, which is not a CLDR locale)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        tag = po.parent.parent.name.replace("_", "-")
        with po.open("rb") as fp:
            catalog = read_po(fp, locale=babel_locale(tag))
        mo = po.with_suffix(".mo")
        with mo.open("wb") as fp:
            write_mo(fp, catalog)
        written.append(mo)
    return written


if __name__ == "__main__":  # python -m messaging.i18n: what make install runs
    for path in compile_catalogues():
        print(f"compiled {path.relative_to(LOCALE_DIR.parent.parent)}")
