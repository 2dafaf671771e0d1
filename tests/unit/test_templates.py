"""Process templates: the bundled one is valid; broken ones get one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.settings import REPO_TEMPLATES, Settings
from flows.templates import json_schema, list_templates, load_template
from flows.templates.validation import validate_template
from store.errors import TemplateError


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, root)
    return root / "learning-cycle"


def test_bundled_template_is_valid_in_every_language() -> None:
    report = validate_template(Settings(), "learning-cycle")
    # 6 stages, the workshop's update and cancellation besides its invite: 8 emails, each in
    # four languages (the reflection too, whichever language the coordinator reads), and the
    # 7 that go to participants in easy-to-read Swedish.
    assert report.startswith(
        "learning-cycle: valid: 6 stages, 39 emails (sv, en, ar, fi, sv-x-easy) rendered for 25 "
        "sample participants"
    )
    assert list_templates(REPO_TEMPLATES) == ["annual-survey", "learning-cycle"]


def test_followup_asks_the_solution_focused_questions() -> None:
    t = load_template(REPO_TEMPLATES / "learning-cycle")
    followup = t.stage("followup")
    assert followup.questions == ["scale-now", "what-is-better", "difference-made", "one-step-up"]
    scale = t.questions["scale-now"]
    assert (scale.kind, scale.min, scale.max) == ("scale", 0, 10)
    assert scale.high and "as well as it possibly could" in scale.high["en"]


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / "process.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    after: followup\n", "    after: nothing\n", "anchored on unknown stage 'nothing'"),
        (
            "    at: start\n    approval: required\n",
            "    after: reflection\n    approval: required\n",
            "in a circle",
        ),
        (
            "    at: start\n    approval: required\n",
            "    at: tomorrow\n    approval: required\n",
            "at must be 'start'",
        ),
        ("    offset: 2d\n", "    offset: two days\n", "invalid duration 'two days'"),
        ("kind: followup", "kind: survey", "stages.3.kind"),
        ("    unless: accepted\n", "    unless: maybe\n", "unless must be"),
        (
            "questions: [scale-now,",
            "questions: [no-such-question,",
            "unknown question 'no-such-question'",
        ),
    ],
)
def test_broken_process_yaml_is_one_clear_line(
    copy: Path, old: str, new: str, message: str
) -> None:
    edit(copy, old, new)
    with pytest.raises(TemplateError) as caught:
        load_template(copy)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_translation_is_reported(copy: Path) -> None:
    (copy / "emails" / "reflection.en.md.j2").unlink()
    with pytest.raises(TemplateError, match=r"missing email .*reflection\.en\.md\.j2"):
        load_template(copy)


def test_an_email_with_an_unknown_variable_fails_validation(copy: Path) -> None:
    path = copy / "emails" / "invitation.sv.md.j2"
    path.write_text(path.read_text().replace("{{ cycle.name }}", "{{ cycle.title }}", 1))
    with pytest.raises(TemplateError, match="has no attribute 'title'"):
        validate_template(Settings(templates_dir=copy.parent), str(copy))


def test_an_error_in_the_workshop_update_fails_validation_in_one_line(copy: Path) -> None:
    """The update is sent only when the workshop moves: validation must find its error now."""
    from tests.e2e.test_cli import invoke

    path = copy / "emails" / "workshop-update.en.md.j2"
    path.write_text(path.read_text() + "\nBring {{ vars.what_to_bring }}.\n")
    result = invoke("templates", "validate", str(copy))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "error: learning-cycle/emails/workshop-update.en.md.j2: "
        "'dict object' has no attribute 'what_to_bring'"
    ]
    assert result.stdout == ""


def test_schema_is_published() -> None:
    schema = json_schema()
    assert schema["title"] == "ProcessSpec"
    assert "stages" in schema["required"]


def test_the_fast_yaml_loader_reads_every_bundled_file_as_the_plain_one_does() -> None:
    """Templates are read with libyaml's loader (messaging/render.py, read_yaml); every YAML
    file and every email's front matter that samverkan ships gives the same values as
    PyYAML's own pure-Python safe loader."""
    import yaml

    from messaging.render import _FRONT, read_yaml

    texts = [p.read_text(encoding="utf-8") for p in sorted(REPO_TEMPLATES.rglob("*.yaml"))]
    for path in sorted(REPO_TEMPLATES.rglob("*.md.j2")):
        found = _FRONT.match(path.read_text(encoding="utf-8"))
        assert found, path
        texts.append(found.group(1))
    assert len(texts) > 50
    for text in texts:
        assert read_yaml(text) == yaml.load(text, Loader=yaml.SafeLoader)
    with pytest.raises(yaml.constructor.ConstructorError):  # the safe tags only
        read_yaml("!!python/object/apply:os.system ['true']")
