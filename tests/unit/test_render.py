"""Rendering: sandboxed, strict, and values are data, never markup or code."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging import render
from messaging.render import EmailTemplates, format_datetime
from store.errors import TemplateError


def templates(
    tmp_path: Path, body: str, subject: str = "Hej {{ participant.name }}"
) -> EmailTemplates:
    (tmp_path / "note.sv.md.j2").write_text(f'---\nsubject: "{subject}"\n---\n{body}', "utf-8")
    return EmailTemplates(tmp_path)


def test_markdown_becomes_text_and_html(tmp_path: Path) -> None:
    t = templates(tmp_path, "Hej **{{ participant.name }}**,\n\n- ett\n- två\n")
    out = t.render("note", "sv", {"participant": {"name": "Anna"}})
    assert out.subject == "Hej Anna"
    assert out.text == "Hej Anna,\n\n- ett\n- två\n"
    assert "<strong>Anna</strong>" in out.html
    assert "<li>ett</li>" in out.html
    assert '<html lang="sv" dir="ltr">' in out.html


def test_missing_variable_is_an_error_naming_the_file(tmp_path: Path) -> None:
    t = templates(tmp_path, "Vi ses {{ meeting.starts }}")
    with pytest.raises(TemplateError, match=r"note\.sv\.md\.j2: 'meeting' is undefined"):
        t.render("note", "sv", {"participant": {"name": "Anna"}})


def test_hostile_values_are_escaped_and_never_evaluated(tmp_path: Path) -> None:
    t = templates(tmp_path, "Hej {{ participant.name }}!\n")
    name = "<script>alert(1)</script> [klicka](javascript:alert(1)) {{ 7*7 }} **fet**"
    out = t.render("note", "sv", {"participant": {"name": name}})
    assert "<script>" not in out.html
    assert "&lt;script&gt;" in out.html
    assert "<a " not in out.html  # no link made from a value
    assert "<strong>" not in out.html  # no emphasis made from a value
    assert "{{ 7*7 }}" in out.html and "49" not in out.html
    assert name in out.text  # the text part shows the name as given


def test_the_sandbox_refuses_unsafe_attribute_access(tmp_path: Path) -> None:
    t = templates(tmp_path, "{{ participant.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        t.render("note", "sv", {"participant": {"name": "x"}})


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    t = templates(tmp_path, "ok\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"note\.sv\.md\.j2 \(line 2\)"):
        t.render("note", "sv", {"participant": {"name": "x"}})


def test_front_matter_is_required(tmp_path: Path) -> None:
    (tmp_path / "note.sv.md.j2").write_text("Hej\n", "utf-8")
    with pytest.raises(TemplateError, match="front matter"):
        EmailTemplates(tmp_path).render("note", "sv", {})


def test_subject_cannot_carry_a_header(tmp_path: Path) -> None:
    t = templates(tmp_path, "x", subject="Hej {{ participant.name }}")
    out = t.render("note", "sv", {"participant": {"name": "A =?UTF-8?Q?=0A?=Bcc: e@x.example\n"}})
    assert "=?" not in out.subject and "\n" not in out.subject


def test_dates_are_written_in_the_participants_language() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    when = datetime(2027, 2, 10, 9, 0, tzinfo=ZoneInfo("Europe/Stockholm"))
    assert format_datetime(when, "sv") == "onsdag 10 februari 2027 kl. 09:00"
    assert format_datetime(when, "en") == "Wednesday 10 February 2027 at 09:00"


def test_links_read_well_in_the_text_part_and_work_in_html(tmp_path: Path) -> None:
    t = templates(tmp_path, "Svara [här]({{ url }}), tack.\n")
    out = t.render("note", "sv", {"participant": {"name": "A"}, "url": "https://x.example/a/T_k-1"})
    assert out.text == "Svara här (https://x.example/a/T_k-1), tack.\n"
    assert '<a href="https://x.example/a/T_k-1">här</a>' in out.html


def test_a_template_cannot_change_the_values_it_is_given(tmp_path: Path) -> None:
    """Values are shared by every recipient of a stage: one email must not alter the next."""
    t = templates(tmp_path, "{{ participant.update({'name': 'Someone else'}) }}")
    with pytest.raises(
        TemplateError, match="access to attribute 'update' of 'dict' object is unsafe"
    ):
        t.render("note", "sv", {"participant": {"name": "Anna"}})


# Markdown is converted once per template with markers in place of the values, and each
# recipient's values are put into that HTML (messaging.render._MaskedMarkdown). Wherever a
# value could change how the Markdown around it is read, that must not show: the HTML is the
# same as converting the recipient's own Markdown.
SNIPPETS = [
    "Hej {{ a }},",
    "**{{ a }}**",
    "*{{ a }}*",
    "_{{ a }}_ och {{ b }}",
    "x*{{ a }}*y",
    "{{ a }}. {{ b }}",
    "{{ a }}) {{ b }}",
    "  {{ a }}. text",
    "1. {{ a }}",
    "- {{ a }}",
    "# {{ a }}",
    "> {{ a }}",
    "[{{ a }}]({{ b }})",
    "[länk]({{ b }})",
    "<{{ b }}>",
    "`{{ a }}`",
    "    {{ a }}",
    "```\n{{ a }}\n```",
    "{{ a }}\n===",
    "{{ a }}\n---",
    "{{ a }}_{{ b }}",
    '![{{ a }}](x.png "{{ b }}")',
    "{{ a }}  \nnästa rad",
    "{% if a %}{{ a }}{% endif %}",
    "{{ a }}{{ b }}",
    "\\{{ a }}",
    "&{{ a }};",
    "**{{ a }}**{{ b }}",
    "{{ a }}**b**",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "Anna",
            "Anna Lindqvist",
            "1",
            "3K",
            "",
            "O'Brien",
            "*x*",
            "_x_",
            "http://example.org/a/SVLINKRSVPS5X",
            "Åsa Öberg",
            "a_b",
            "(FK)",
            "x\x00y",
            "2027",
            "#1",
            "a  b\n\nc",
            "<b>",
            "&amp;",
        ]
    ),
    st.text(max_size=20),
)


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=5),
    glue=st.sampled_from(["\n", "\n\n", " "]),
    first=st.tuples(VALUES, VALUES),
    second=st.tuples(VALUES, VALUES),
)
def test_html_from_shared_markdown_is_what_each_recipients_own_markdown_gives(
    parts: list[str], glue: str, first: tuple[str, str], second: tuple[str, str]
) -> None:
    body = glue.join(parts) + "\n"
    masked = render._MASK_ENV.from_string(body)
    own = render._environment(render._md_escape).from_string(body)
    shared = render._MaskedMarkdown()
    for a, b in (first, second, first):  # the second and third reuse what the first built
        context = {"a": a, "b": b, "language": "sv"}
        expected = render._MD.render(own.render(context))
        assert render.markdown_html(masked, shared, context) == expected


def test_a_subject_is_shared_within_a_run_only_when_it_is_not_personal(tmp_path: Path) -> None:
    shared: dict[tuple[str, str, str], str] = {}
    personal = templates(tmp_path, "Hej\n", subject="Hej {{ participant.name }}")
    names = [
        personal.render("note", "sv", {"participant": {"name": n}}, shared).subject
        for n in ("Anna", "Bo")
    ]
    assert names == ["Hej Anna", "Hej Bo"] and shared == {}
    plain = templates(tmp_path, "Hej\n", subject="Om {{ cycle.name }}")
    context = {"participant": {"name": "Anna"}, "cycle": {"name": "Vår 2027"}}
    assert plain.render("note", "sv", context, shared).subject == "Om Vår 2027"
    assert shared == {("note", "sv", "subject"): "Om Vår 2027"}


def arabic(tmp_path: Path, body: str) -> EmailTemplates:
    (tmp_path / "note.ar.md.j2").write_text(f'---\nsubject: "مرحبًا"\n---\n{body}', "utf-8")
    return EmailTemplates(tmp_path)


FSI, PDI = "\u2068", "\u2069"
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(
    "org",
    [
        "Göteborgs Stad",  # stands for its marker in the HTML
        "Göteborgs Stad (GBG)",  # does not (it ends in a bracket): goes into the Markdown
        "Göteborgs\u202eStad",  # carries a right-to-left override of its own
    ],
)
def test_an_arabic_email_isolates_every_value_and_keeps_no_override(
    tmp_path: Path, org: str
) -> None:
    t = arabic(
        tmp_path,
        "مرحبًا {{ participant.name }}،\n\n{{ participant.organisation }} مهمة لنا.\n\n"
        '[أجب هنا]({{ links.answers }} "{{ cycle.name }}")\n\n'
        "{% for q in questions %}\n{{ loop.index }}. {{ q }}\n{% endfor %}\n",
    )
    out = t.render(
        "note",
        "ar",
        {
            "participant": {"name": "Omar", "organisation": org},
            "links": {"answers": "https://samverkan.example/a/TOKEN"},
            "cycle": {"name": "Vår 2027"},
            "questions": ["ما الذي أصبح أفضل؟", "ما الفرق؟"],
        },
    )
    shown = org.replace("\u202e", "")
    # Each value, its own override removed, isolated from the Arabic around it.
    assert "\u202e" not in out.text and "\u202e" not in out.html
    assert f"{FSI}{shown}{PDI}" in out.text
    assert f"<bdi>{html.escape(shown, quote=False)}</bdi>" in out.html or (
        f"{FSI}{html.escape(shown, quote=False)}{PDI}" in out.html
    )
    # A link's address and its title are left as they are: a link that works, a title
    # without markup.
    assert "(https://samverkan.example/a/TOKEN" in out.text
    assert 'href="https://samverkan.example/a/TOKEN"' in out.html
    assert 'title="Vår 2027"' in out.html
    # The numbering still makes a list.
    assert "<ol>" in out.html and out.html.count("<li>") == 2
    assert BIDI.sub("", out.text).count("1. ") == 1
