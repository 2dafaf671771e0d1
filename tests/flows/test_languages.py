"""Every voice in its own language: Swedish, English, Finnish, Arabic (right to left) and
easy-to-read Swedish, through a whole learning cycle as the participants receive it.

The expected dates below are written out by hand as each language writes them, not computed
with the code under test."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from typer.testing import CliRunner

from flows.cli import app as cli
from flows.people.participants import import_participants
from flows.reporting.indicators import compute
from flows.reporting.report import build_report
from flows.web.app import create_app
from messaging import i18n
from store.errors import InvalidInput
from tests.conftest import launch_learning_cycle, read_maildir, tick
from tests.e2e.test_cli import LAUNCH
from tests.workspace import Client

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2027, 1, 20, 9, 0, tzinfo=TZ)
WORKSHOP = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)  # a Wednesday

ANNA = "anna.lindqvist@forsakringskassan.example"  # sv
SARA = "sara.ahmadi@goteborg.example"  # en
AINO = "aino.virtanen@goteborg.example"  # fi
OMAR = "omar.haddad@goteborg.example"  # ar
LENA = "lena.strom@goteborg.example"  # sv-x-easy
FIVE = {ANNA: "sv", SARA: "en", AINO: "fi", OMAR: "ar", LENA: "sv-x-easy"}
MORE = (
    f"Aino Virtanen,{AINO},Göteborgs Stad,service_user,fi",
    f"Omar Haddad,{OMAR},Göteborgs Stad,service_user,AR",
    f"Lena Ström,{LENA},Göteborgs Stad,service_user,sv-x-easy",
)
HODAN = "Hodan Ali,hodan.ali@goteborg.example,Göteborgs Stad,service_user,so"  # Somali
WHEN = {
    "sv": "onsdag 10 februari 2027 kl. 09:00",
    "en": "Wednesday 10 February 2027 at 09:00",
    "fi": "keskiviikkona 10. helmikuuta 2027 klo 9.00",
    "ar": "الأربعاء، 10 فبراير 2027، الساعة 09:00",
    "sv-x-easy": "onsdag 10 februari 2027 klockan 09:00",
}
SCALE_QUESTION = {
    "sv": "På en skala från 0 till 10, var befinner sig vårt samarbete just nu?",
    "en": "On a scale from 0 to 10, where is our collaboration right now?",
    "fi": "Missä yhteistyömme on tällä hetkellä asteikolla 0–10?",
    "ar": "على مقياس من 0 إلى 10، أين يقف تعاوننا الآن؟",
    "sv-x-easy": "Tänk på en skala från 0 till 10. Var är vårt samarbete just nu?",
}
SEND_BUTTON = {
    "sv": "Skicka mina svar",
    "en": "Send my answers",
    "fi": "Lähetä vastaukset",
    "ar": "إرسال إجاباتي",
    "sv-x-easy": "Skicka mina svar",
}
FSI, PDI, RLM = "\u2068", "\u2069", "\u200f"


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def html_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


def invite_of(msg: EmailMessage) -> Calendar:
    [part] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    return Calendar.from_ical(part.get_payload(decode=True))


@pytest.fixture
def five(network, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The example network and three service users more: in Finnish, Arabic and easy-to-read
    Swedish."""
    add_people(network, tmp_path, *MORE)
    return network


def add_people(engine, tmp_path: Path, *rows: str) -> None:  # type: ignore[no-untyped-def]
    """Import (or update) the people of ``rows``, lines of the participants file."""
    path = tmp_path / "people.csv"
    path.write_text("name,email,organisation,role,language\n" + "\n".join(rows) + "\n", "utf-8")
    import_participants(engine, path)


def launch(engine, settings, **extra: object) -> int:  # type: ignore[no-untyped-def]
    """The bundled learning cycle "Vår 2027", its invitation approved."""
    return launch_learning_cycle(
        engine, settings, START, WORKSHOP, location="Stadshuset, Göteborg", **extra
    )


def personal_link(msg: EmailMessage, kind: str) -> str:
    [path] = re.findall(rf"http://127\.0\.0\.1:8000(/{kind}/[A-Za-z0-9_-]+)", text_of(msg))
    return path


def test_five_languages_walk_the_learning_cycle_each_in_their_own(five, settings) -> None:
    mail_dir = Path(settings.mail_dir)
    notes: list[str] = []
    cycle_id = launch(five, settings, notes=notes)
    # Every email of the cycle exists in each language but the reflection, which goes to the
    # coordinator: the easy-to-read Swedish has every one of the participants' emails.
    assert notes == []

    tick(START)
    tick(START + timedelta(minutes=5))
    mail = read_maildir(mail_dir)
    for who, lang in FIVE.items():
        invitation, invite = mail[who][:2]
        for msg in (invitation, invite):
            assert msg["Content-Language"] == lang
            html = html_of(msg)
            direction = "rtl" if lang == "ar" else "ltr"
            assert f'<html lang="{lang}" dir="{direction}">' in html
            assert f'<div lang="{lang}" dir="{direction}">' in html
        # The date as the language writes it, and the place.
        assert WHEN[lang] in text_of(invitation).replace(FSI, "").replace(PDI, "")
        assert "Stadshuset, Göteborg" in text_of(invite)
    assert mail[AINO][0]["Subject"] == "Tervetuloa mukaan: Vår 2027"
    assert mail[OMAR][0]["Subject"] == "أهلًا بك في Vår 2027"
    assert mail[LENA][1]["Subject"] == "Inbjudan till möte onsdag 10 februari – Vår 2027"

    # Arabic: every value is isolated from the right-to-left text around it, in the text part
    # with the Unicode isolates and in the HTML part with <bdi>; a link's address is not.
    arabic = mail[OMAR][0]
    assert f"{FSI}Omar{PDI}" in text_of(arabic)
    assert f"{FSI}{WHEN['ar']}{PDI}" in text_of(arabic)
    html = html_of(arabic)
    assert "<bdi>Omar</bdi>" in html and f"<bdi>{WHEN['ar']}</bdi>" in html
    assert FSI not in "".join(re.findall(r'href="([^"]*)"', html))
    # ...and the Swedish one is as it always was.
    assert FSI not in text_of(mail[ANNA][0]) and "<bdi>" not in html_of(mail[ANNA][0])

    # The calendar invite's title reads right to left in an RTL client: it starts with the
    # right-to-left mark, the Latin-script cycle name isolated in it.
    event = invite_of(mail[OMAR][1]).walk("VEVENT")[0]
    summary = str(event["SUMMARY"])
    assert summary.startswith(RLM) and f"{FSI}Vår 2027{PDI}" in summary
    assert not str(invite_of(mail[ANNA][1]).walk("VEVENT")[0]["SUMMARY"]).startswith(RLM)

    # The follow-up: the questions in the email and on the personal page in each language.
    tick(WORKSHOP + timedelta(days=7))
    mail = read_maildir(mail_dir)
    pages = Client(create_app(settings, five))
    for i, (who, lang) in enumerate(FIVE.items()):
        followup = mail[who][-1]
        assert followup["Content-Language"] == lang
        assert SCALE_QUESTION[lang] in text_of(followup)
        path = personal_link(followup, "a")
        page = pages.get(path)
        direction = "rtl" if lang == "ar" else "ltr"
        assert page.status_code == 200
        assert f'<html lang="{lang}" dir="{direction}">' in page.text
        assert SCALE_QUESTION[lang] in page.text and SEND_BUTTON[lang] in page.text
        sent = pages.post(path, data={"q_scale-now": str(4 + i)}, follow_redirects=True)
        assert sent.status_code == 200 and f'<html lang="{lang}"' in sent.text
    arabic_page = pages.get(personal_link(mail[OMAR][-1], "a"))
    assert "<h1><bdi>Vår 2027</bdi></h1>" in arabic_page.text
    bad = pages.post(personal_link(mail[AINO][-1], "a"), data={"q_scale-now": "11"})
    assert bad.status_code == 422
    assert "Lomakkeessa oli jotain korjattavaa: kohdassa ”" in bad.text
    assert "valitse luku väliltä 0–10." in bad.text

    # The indicators and the report count them as one network: five answers on the scale,
    # whatever language they were asked in.
    figures = compute(five, cycle_ids=[cycle_id], min_group=settings.min_group)
    everyone = {r.indicator: r for r in figures.rows() if r.organisation == "*" and r.role == "*"}
    assert everyone["answered"].value == 5 and everyone["asked"].value == 16
    assert everyone["scale_mean"].value == pytest.approx((4 + 5 + 6 + 7 + 8) / 5)
    report = build_report(five, settings, cycle_id, "md")
    assert "Var vi står" in report  # the coordinator reads Swedish (SAMVERKAN_COORDINATOR_…)

    # The rest of the cycle: the workshop's reminder (nobody accepted), no follow-up reminder
    # (all five answered), the reflection. Every message each received is in their language.
    tick(WORKSHOP - timedelta(days=2))
    tick(WORKSHOP + timedelta(days=12))
    assert tick(WORKSHOP + timedelta(days=14)).completed == [cycle_id]
    mail = read_maildir(mail_dir)
    for who, lang in FIVE.items():
        direction = "rtl" if lang == "ar" else "ltr"
        got = [
            (m["Content-Language"], f'<html lang="{lang}" dir="{direction}">' in html_of(m))
            for m in mail[who]
        ]
        assert got == [(lang, True)] * 4, who  # invitation, invite, reminder, follow-up
    [reflection] = mail["coordinator@coordination.example"]
    assert reflection["Content-Language"] == "sv"
    assert "medelvärde 6,0" in text_of(reflection)  # the five answers, as Swedish writes 6.0


def test_the_easy_to_read_wording_is_offered_on_the_follow_up_page(five, settings) -> None:
    launch(five, settings)
    tick(START)
    tick(WORKSHOP + timedelta(days=7))
    mail = read_maildir(Path(settings.mail_dir))
    pages = Client(create_app(settings, five))
    anna = personal_link(mail[ANNA][-1], "a")
    usual = pages.get(anna)
    assert SCALE_QUESTION["sv"] in usual.text
    assert f'href="{anna}?text=easy" lang="sv-x-easy">Läs frågorna på lättläst svenska' in (
        usual.text
    )
    easy = pages.get(f"{anna}?text=easy")
    assert SCALE_QUESTION["sv-x-easy"] in easy.text and SCALE_QUESTION["sv"] not in easy.text
    assert f'href="{anna}?text=plain"' in easy.text
    # Answered on the easy page, the thanks page keeps the wording the person chose.
    sent = pages.post(f"{anna}?text=easy", data={"q_scale-now": "6"})
    assert sent.status_code == 303 and sent.headers["location"].endswith("/thanks?text=easy")
    # Lena reads easy-to-read Swedish from the start, and can ask for the usual wording.
    lena = personal_link(mail[LENA][-1], "a")
    assert SCALE_QUESTION["sv-x-easy"] in pages.get(lena).text
    assert SCALE_QUESTION["sv"] in pages.get(f"{lena}?text=plain").text
    # Sara reads English, which has no easy-to-read wording: nothing is offered.
    sara = pages.get(personal_link(mail[SARA][-1], "a"))
    assert "?text=easy" not in sara.text


def test_a_language_the_template_is_not_written_in_needs_a_fallback(network, settings, tmp_path):
    add_people(network, tmp_path, HODAN)
    with pytest.raises(InvalidInput) as refused:
        launch(network, settings)
    message = str(refused.value)
    assert "\n" not in message
    assert "1 read so" in message and "--fallback-language" in message
    notes: list[str] = []
    launch(network, settings, fallback_language="en", notes=notes)
    assert notes == [
        "1 participant reads so: template learning-cycle has no so emails; they get en "
        "(--fallback-language)"
    ]
    tick(START)
    [invitation, invite] = read_maildir(Path(settings.mail_dir))["hodan.ali@goteborg.example"]
    assert invitation["Subject"] == "Welcome to Vår 2027"
    assert invitation["Content-Language"] == "en" and invite["Content-Language"] == "en"
    with pytest.raises(InvalidInput, match="no invitation email in de"):
        launch(network, settings, fallback_language="de")


def test_launch_from_the_command_line_names_the_fallback(network, settings, tmp_path) -> None:
    add_people(network, tmp_path, HODAN)
    refused = CliRunner().invoke(cli, LAUNCH)
    assert refused.exit_code == 2  # the commands' exit status for an error
    [line] = refused.output.strip().splitlines()
    assert "--fallback-language" in line
    done = CliRunner().invoke(cli, [*LAUNCH, "--fallback-language", "sv"])
    assert done.exit_code == 0, done.output
    assert "1 participant reads so: template learning-cycle has no so emails; they get sv" in (
        done.output
    )


@pytest.mark.parametrize("language", ["sv", "fi", "ar"])
def test_every_message_samverkan_writes_is_in_each_catalogue(language: str) -> None:
    from babel.messages.pofile import read_po

    wanted = extracted()
    path = i18n.LOCALE_DIR / language / "LC_MESSAGES" / "samverkan.po"
    catalogue = {(m.context, m.id): m for m in read_po(path.open("rb")) if m.id}
    assert missing_from(catalogue, wanted) == []
    # A catalogue with a message taken out is caught (the check can fail).
    assert missing_from(dict(list(catalogue.items())[1:]), wanted) != []


def test_the_catalogue_template_is_up_to_date() -> None:
    from babel.messages.pofile import read_po

    pot = i18n.LOCALE_DIR / "samverkan.pot"
    written = {(m.context, m.id) for m in read_po(pot.open("rb")) if m.id}
    assert written == set(extracted()), "run: make messages"


def extracted() -> dict[tuple[str | None, str], str]:
    """Every message of the code and the pages, as `make messages` extracts them."""
    from babel.messages.extract import extract_from_dir

    root = i18n.LOCALE_DIR.parent.parent
    method_map = [
        ("flows/**.py", "python"),
        ("messaging/**.py", "python"),
        ("flows/web/templates/**.html", "jinja2"),
    ]
    keywords = {
        "_": None,
        "gettext": None,
        "ngettext": (1, 2),
        "pgettext": ((1, "c"), 2),
        "N_": None,
        "NP_": ((1, "c"), 2),
        "tr": (2,),
    }
    found = {}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(root), method_map, keywords=keywords
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found[(context, msgid)] = msgid
    return found


def missing_from(catalogue: dict, wanted: dict) -> list[str]:  # type: ignore[type-arg]
    """The messages a catalogue lacks, leaves untranslated or fuzzy, or translates with other
    placeholders than the message's own."""
    wrong = []
    for key in wanted:
        m = catalogue.get(key)
        if m is None or not m.string or m.fuzzy:
            wrong.append(f"{key}: missing")
        elif placeholders(m.id) != placeholders(m.string):
            wrong.append(f"{key}: placeholders {placeholders(m.string)}")
    return wrong


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{\w+\}|%\(\w+\)s", text))


def test_a_translation_of_another_version_of_the_instrument_is_refused(tmp_path: Path) -> None:
    import shutil

    from flows.settings import REPO_TEMPLATES
    from flows.templates import Question
    from flows.templates.instruments import load_instruments
    from store.errors import TemplateError

    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    path = root / "instruments" / "translations" / "samverkan-sf.fi.yaml"
    path.write_text(path.read_text().replace("version: 1", "version: 7"), encoding="utf-8")
    with pytest.raises(TemplateError, match="translates samverkan-sf version 7"):
        load_instruments(root, Question)
    path.write_text(
        path.read_text().replace("version: 7", "version: 1").replace("  best-hopes:", "  bh:"),
        encoding="utf-8",
    )
    with pytest.raises(TemplateError, match="has no wording for 'best-hopes'"):
        load_instruments(root, Question)


def test_easy_to_read_texts_are_checked_for_readability(settings, tmp_path: Path) -> None:
    import shutil

    from flows.settings import REPO_TEMPLATES
    from flows.templates.readability import lix
    from flows.templates.validation import validate_template

    # Björnsson's measure on two texts counted by hand: 7 words, 2 sentences, 1 long word
    # (tillsammans); 5 words, 1 sentence, 4 long.
    assert lix("Vi ses snart. Vi gör det tillsammans.") == pytest.approx(7 / 2 + 100 * 1 / 7)
    assert lix("Samordningsförbundet genomför uppföljningsfrågor med deltagarna.") == pytest.approx(
        5 / 1 + 100 * 4 / 5
    )
    ok = validate_template(settings, "learning-cycle")
    assert "(sv, en, ar, fi, sv-x-easy)" in ok and "warning" not in ok
    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    hard = root / "learning-cycle" / "emails" / "workshop-reminder.sv-x-easy.md.j2"
    head, _, _ = hard.read_text(encoding="utf-8").partition("{#-")
    hard.write_text(
        head + "Samordningsförbundets arbetsgruppsmöte genomförs enligt verksamhetsplanen "
        "tillsammans med förtroendevalda representanter för huvudmännen "
        "{{ meetings.workshop.starts | datetime }} {{ meetings.workshop.location }}.\n",
        encoding="utf-8",
    )
    warned = validate_template(settings, str(root / "learning-cycle"))
    assert "warning: workshop-reminder.sv-x-easy.md.j2: LIX" in warned


def test_someone_who_comes_later_in_a_language_nobody_chose_gets_swedish_and_it_is_said(
    network, settings, tmp_path: Path
) -> None:
    """A launch refuses a language nothing serves; a person whose language changes to one
    afterwards does not stop the stage for everyone: they get Swedish, and the stage says so."""
    cycle_id = launch(network, settings)
    add_people(network, tmp_path, f"Sara Ahmadi,{SARA},Göteborgs Stad,service_user,so")
    report = tick(START)
    outcomes = {s.key: s for c, s in report.stages if c == cycle_id}
    assert outcomes["workshop"].status == "done"
    assert "so readers got sv: no so text and no fallback language chosen" in (
        outcomes["workshop"].note
    )
    [*_, invite] = read_maildir(Path(settings.mail_dir))[SARA]
    assert invite["Content-Language"] == "sv"
    assert invite["Subject"].startswith("Inbjudan: workshop onsdag 10 februari")


def test_the_page_of_someone_served_by_the_fallback_is_in_the_fallback(
    network, settings, tmp_path: Path
) -> None:
    add_people(
        network, tmp_path, "Jonas Weber,jonas.weber@goteborg.example,Göteborgs Stad,professional,de"
    )
    launch(network, settings, fallback_language="sv")
    tick(START)
    tick(WORKSHOP + timedelta(days=7))
    followup = read_maildir(Path(settings.mail_dir))["jonas.weber@goteborg.example"][-1]
    assert followup["Content-Language"] == "sv"
    page = Client(create_app(settings, network)).get(personal_link(followup, "a"))
    # Swedish throughout, as the emails: not English words under lang="de".
    assert '<html lang="sv" dir="ltr">' in page.text
    assert SCALE_QUESTION["sv"] in page.text and SEND_BUTTON["sv"] in page.text


def test_a_question_falls_back_field_by_field_along_the_language_chain() -> None:
    from flows.templates import Question

    q = Question.model_validate(
        {
            "id": "scale-now",
            "kind": "scale",
            "text": {"sv": "Var står vi?", "en": "Where are we?", "sv-x-easy": "Var är vi nu?"},
            "low": {"sv": "0 = inget", "en": "0 = nothing"},
            "high": {"sv": "10 = allt", "en": "10 = everything"},
        }
    )
    easy = q.localised("sv-x-easy")
    # The easy wording's own text; its anchors from Swedish, the next language along.
    assert (easy["text"], easy["low"], easy["high"]) == ("Var är vi nu?", "0 = inget", "10 = allt")
    assert q.localised("de", fallback="sv")["text"] == "Var står vi?"
    assert q.localised("de")["text"] == "Where are we?"


def test_one_instant_is_written_on_each_zones_clock() -> None:
    stockholm = datetime(2027, 2, 10, 9, 0, tzinfo=TZ)
    assert i18n.format_datetime(stockholm, "fi") == WHEN["fi"]
    helsinki = stockholm.astimezone(ZoneInfo("Europe/Helsinki"))
    assert i18n.format_datetime(helsinki, "fi") == "keskiviikkona 10. helmikuuta 2027 klo 10.00"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("SV", "sv"), ("en_gb", "en-GB"), ("sv-X-Easy", "sv-x-easy"), ("zh-hant-tw", "zh-Hant-TW")],
)
def test_language_tags_are_kept_in_their_canonical_case(tag: str, expected: str) -> None:
    assert i18n.normalise(tag) == expected


@pytest.mark.parametrize("tag", ["svenska", "s", "sv--x", "sv_SE!", "x-easy", "sv-" + "a" * 40])
def test_what_is_not_a_language_tag_is_refused_in_one_line(tag: str) -> None:
    with pytest.raises(ValueError) as caught:
        i18n.normalise(tag)
    assert "\n" not in str(caught.value) and repr(tag) in str(caught.value)


def test_a_template_writes_every_participant_email_in_a_language_or_none(tmp_path: Path) -> None:
    import shutil

    from flows.settings import REPO_TEMPLATES
    from flows.templates import load_template
    from store.errors import TemplateError

    folder = tmp_path / "learning-cycle"
    shutil.copytree(REPO_TEMPLATES / "learning-cycle", folder)
    (folder / "emails" / "workshop-cancel.fi.md.j2").unlink()
    with pytest.raises(TemplateError, match=r"written in fi, but not workshop-cancel\.fi\.md\.j2"):
        load_template(folder)
    # An easy-to-read variant may cover some of them (the rest fall back to Swedish).
    emails = folder / "emails"
    shutil.copy(REPO_TEMPLATES / "learning-cycle/emails/workshop-cancel.fi.md.j2", emails)
    (folder / "emails" / "workshop-cancel.sv-x-easy.md.j2").unlink()
    load_template(folder)
    (folder / "emails" / "invitation.fi.md.j2").rename(folder / "emails" / "invitation.FI.md.j2")
    with pytest.raises(TemplateError, match="write the language as fi"):
        load_template(folder)
