"""Combining many collaborations' indicator exports into a regional or national view.

``samverkan indicators combine FILE…`` reads exports (CSV or JSON, schema
``samverkan.indicators/2``, and ``/1`` where it can) and adds up, per instrument question,
respondent group and year, the whole-collaboration rows (organisation and role ``*``): people
asked and answering, the response rate, the number of scale answers, their mean, and their
median, exact because it is read off the added-up histograms. Each figure says how many
collaborations are behind it, and how many were left out because their own export
suppressed that figure.

Only published figures go in. A figure a collaboration suppressed is not in its export, so it
is in no combined figure either: whatever the combined view shows is a function of the
published inputs, and nothing suppressed in an input can be worked out from it together
with the inputs. A combined figure with fewer people than ``min_group`` is suppressed too,
with one more group of the same question and year when one alone would be recovered from
the total (for readers who see only the combined view).

Schema 1 exports have no instrument, no questions and no histograms: their counts combine,
and their scale figures (all scale answers of a cycle together) combine as a mean under the
question ``(scale)``; their median is not combined, and says so.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flows.reporting.by_question import parse_histogram
from flows.reporting.indicators import ALL, median
from store.errors import InvalidInput

SCHEMA = "samverkan.combined/1"
V1 = "samverkan.indicators/1"
V2 = "samverkan.indicators/2"
V1_SCALE = "(scale)"

Key = tuple[str, int | None, str, str, int]  # instrument, version, question, group, year


@dataclass
class _Sum:
    asked: int = 0
    answered: int = 0
    counted: set[str] = field(default_factory=set)  # collaborations behind the counts
    n: int = 0
    total: float = 0.0  # sum of the scale values
    histogram: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    scaled: set[str] = field(default_factory=set)  # collaborations behind the scale figures
    exact: bool = True  # every scale figure came with its histogram
    left_out: set[str] = field(default_factory=set)  # suppressed at source


@dataclass(frozen=True)
class Combined:
    schema: str
    instrument: str
    instrument_version: int | None
    question: str
    respondent_group: str
    year: int
    collaborations: int
    suppressed_at_source: int
    asked: int | None
    answered: int | None
    response_rate: float | None
    n: int | None
    mean: float | None
    median: float | None
    change: float | None  # the mean's change from the year before, same question and group
    histogram: str
    suppressed: bool


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not all(isinstance(r, dict) for r in data):
            raise InvalidInput(f"{path}: not an indicators export (a list of rows)")
        yield from data
        return
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "schema" not in reader.fieldnames:
        raise InvalidInput(f"{path}: not an indicators export (no schema column)")
    yield from reader


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    # The export writes a name a spreadsheet would run as a formula with a leading quote.
    return text[1:] if text.startswith("'") and text[1:2] in "=+-@\t\r\n" else text


def _int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(float(value))


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


class Combiner:
    def __init__(self) -> None:
        self.sums: dict[Key, _Sum] = defaultdict(_Sum)
        # (instrument, question) -> {version: first file that had it}
        self.versions: dict[tuple[str, str], dict[int | None, str]] = defaultdict(dict)
        self.files = 0
        self.collaborations: set[str] = set()

    def add_file(self, path: Path) -> None:
        self.files += 1
        for number, row in enumerate(_rows(path), start=2):
            try:
                self._add(row, path)
            except (KeyError, ValueError, TypeError) as exc:
                raise InvalidInput(
                    f"{path}: row {number}: not a valid indicators row ({exc})"
                ) from None

    def _add(self, row: dict[str, Any], path: Path) -> None:
        schema = row["schema"]
        if schema not in (V1, V2):
            raise InvalidInput(f"{path}: schema {schema!r} is not one samverkan can combine")
        if _text(row["organisation"]) != ALL or _text(row["role"]) != ALL:
            return  # only each collaboration's own totals are combined
        collaboration = _text(row.get("collaboration")) or path.stem
        self.collaborations.add(collaboration)
        year = int(str(row["cycle_start"])[:4])
        indicator = row["indicator"]
        if schema == V1:
            if indicator.startswith("scale_") and indicator != "scale_mean":
                return
            inst, version, group = "", None, ALL
            question = V1_SCALE if indicator == "scale_mean" else ALL
        else:
            inst, version = _text(row["instrument"]), _int(row["instrument_version"])
            question, group = _text(row["question"]), _text(row["respondent_group"])
        if question != ALL and inst:
            seen = self.versions[(inst, question)]
            if version not in seen and seen:
                other, where = next(iter(seen.items()))
                raise InvalidInput(
                    f"question {question!r} of instrument {inst} is version {version} in "
                    f"{path} and version {other} in {where}; combine one version at a time"
                )
            seen.setdefault(version, str(path))
        s = self.sums[(inst, version, question, group, year)]
        if _flag(row["suppressed"]):
            s.left_out.add(collaboration)
            return
        n, value = _int(row["n"]), row["value"]
        if indicator == "asked":
            s.asked += int(float(value))
            s.counted.add(collaboration)
        elif indicator == "answered":
            s.answered += int(float(value))
        elif indicator == "scale_histogram":
            h = parse_histogram(_text(row["histogram"]))
            for v, k in h.items():
                s.histogram[v] += k
            s.n += sum(h.values())
            s.total += sum(v * k for v, k in h.items())
            s.scaled.add(collaboration)
        elif indicator == "scale_mean" and schema == V1 and n:
            s.n += n
            s.total += float(value) * n
            s.exact = False
            s.scaled.add(collaboration)

    def combined(self, min_group: int) -> list[Combined]:
        out: list[Combined] = []
        for key in sorted(
            self.sums, key=lambda k: (k[0], k[1] or 0, k[2], k[3] != ALL, k[3], k[4])
        ):
            s = self.sums[key]
            inst, version, question, group, year = key
            counts = bool(s.counted) and question == ALL
            scale = s.n > 0
            if not counts and not scale and not s.left_out:
                continue
            behind = s.counted | s.scaled
            out.append(
                Combined(
                    SCHEMA,
                    inst,
                    version,
                    question,
                    group,
                    year,
                    len(behind),
                    len(s.left_out - behind),
                    s.asked if counts else None,
                    s.answered if counts else None,
                    round(s.answered / s.asked, 3) if counts and s.asked else None,
                    s.n if scale else None,
                    round(s.total / s.n, 3) if scale else None,
                    median(dict(s.histogram)) if scale and s.exact else None,
                    None,
                    " ".join(f"{v}:{k}" for v, k in sorted(s.histogram.items()) if k)
                    if scale and s.exact
                    else "",
                    # Nothing to show: every collaboration behind it suppressed it.
                    not counts and not scale,
                )
            )
        return _with_change(_suppress(out, min_group))


def _people(c: Combined) -> int:
    return c.asked if c.asked is not None else (c.n or 0)


def _suppress(rows: list[Combined], min_group: int) -> list[Combined]:
    """Hide combined figures of fewer than ``min_group`` people, and, per question and year,
    one more group when a single hidden group could be read off the total."""
    hidden = {
        i for i, c in enumerate(rows) if (c.asked is not None or c.n) and _people(c) < min_group
    }
    by_table: dict[tuple[str, int | None, str, int], list[int]] = defaultdict(list)
    for i, c in enumerate(rows):
        by_table[(c.instrument, c.instrument_version, c.question, c.year)].append(i)
    for members in by_table.values():
        parts = [i for i in members if rows[i].respondent_group != ALL]
        total = [i for i in members if rows[i].respondent_group == ALL]
        gone = [i for i in parts if i in hidden]
        if len(gone) == 1 and total and total[0] not in hidden:
            shown = sorted((_people(rows[i]), i) for i in parts if i not in hidden)
            hidden.add(shown[0][1] if shown else total[0])
    out = []
    for i, c in enumerate(rows):
        if i in hidden:
            c = Combined(
                **{
                    **asdict(c),
                    "asked": None,
                    "answered": None,
                    "response_rate": None,
                    "n": None,
                    "mean": None,
                    "median": None,
                    "histogram": "",
                    "suppressed": True,
                }
            )
        out.append(c)
    return out


def _with_change(rows: list[Combined]) -> list[Combined]:
    before: dict[tuple[str, int | None, str, str], Combined] = {}
    out = []

    def series(c: Combined) -> tuple[str, int, str, str, int]:
        return (c.instrument, c.instrument_version or 0, c.question, c.respondent_group, c.year)

    for c in sorted(rows, key=series):
        key = (c.instrument, c.instrument_version, c.question, c.respondent_group)
        prior = before.get(key)
        if prior is not None and prior.mean is not None and c.mean is not None:
            c = Combined(**{**asdict(c), "change": round(c.mean - prior.mean, 3)})
        before[key] = c
        out.append(c)
    return sorted(
        out,
        key=lambda c: (
            c.instrument,
            c.instrument_version or 0,
            c.question,
            c.respondent_group != ALL,
            c.respondent_group,
            c.year,
        ),
    )


def combine(paths: Iterable[Path], *, min_group: int = 3) -> tuple[Combiner, list[Combined]]:
    combiner = Combiner()
    for path in paths:
        combiner.add_file(path)
    return combiner, combiner.combined(min_group)


def to_csv(rows: Sequence[Combined]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(Combined.__dataclass_fields__))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(r).items()})
    return buffer.getvalue()


def to_json(rows: Sequence[Combined]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)
