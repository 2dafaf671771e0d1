"""``samverkan templates validate``: check a template the way a launch would use it."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from flows.cycles.launch import launch_cycle, participant_emails
from flows.settings import Settings
from flows.templates import ProcessTemplate, find_template, load_template
from flows.templates.readability import EASY_LIMIT, lix, readable_text
from messaging import i18n
from store.db import open_store, session_scope
from store.models import Organisation, Participant, Role, pk

HOSTILE_NAME = 'Åsa "<b>{{ 7*7 }}</b>" Öberg =?UTF-8?Q?=0A?='


def validate_template(settings: Settings, name_or_path: str) -> str:
    """Load the template and launch it, in a throwaway database, for sample participants of
    every role and language (one with a hostile name) with the variables' example values.

    Returns a one-paragraph report, then a line per warning (an easy-to-read text that reads
    harder than LIX 30); raises TemplateError or InvalidInput on the first problem.
    """
    folder = find_template(settings.templates_dir, name_or_path)
    template = load_template(folder)
    languages = template_languages(template)
    examples = {k: v.example for k, v in template.spec.variables.items()}
    with tempfile.TemporaryDirectory(prefix="samverkan-validate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'check.db'}"
        engine = open_store(url)
        with session_scope(engine) as session:
            org = Organisation(name="Exempelkommunen")
            session.add(org)
            session.flush()
            for i, (role, lang) in enumerate((r, lang) for r in Role for lang in languages):
                session.add(
                    Participant(
                        name=HOSTILE_NAME if i == 0 else f"Sample {role.value} {lang}",
                        email=f"sample{i}@example.org",
                        email_key=f"sample{i}@example.org",
                        organisation_id=pk(org),
                        role=role,
                        language=lang,
                    )
                )
        starts = [v for k, v in examples.items() if template.spec.variables[k].type == "datetime"]
        from flows.cycles import plan

        tz = plan.zone(settings.timezone)
        earliest = min((plan.parse_when(s, tz) for s in starts), default=None)
        start = (earliest - timedelta(days=30)).isoformat() if earliest else "2027-01-01T09:00"
        checked = settings.model_copy(update={"templates_dir": folder.parent})
        rendered: set[tuple[str, str]] = set()
        launch_cycle(
            engine,
            checked,
            template=str(folder),
            name="Validation",
            start=start,
            variables=examples,
            rendered=rendered,
        )
        engine.dispose()
    stages = template.spec.stages
    got = sorted({lang for _, lang in rendered}, key=languages.index)
    report = (
        f"{template.name}: valid: {len(stages)} stages, {len(rendered)} "
        f"emails ({', '.join(got)}) rendered for {len(Role) * len(languages)} sample "
        f"participants"
    )
    return "\n".join([report, *readability_warnings(template)])


def template_languages(template: ProcessTemplate) -> list[str]:
    """Every language the participants' emails are written in (a variant such as sv-x-easy
    where it covers some of them), Swedish and English first."""
    found = {lang for n in participant_emails(template) for lang in template.languages(n)}
    return sorted(found, key=lambda t: (t not in ("sv", "en"), t != "sv", t))


def readability_warnings(template: ProcessTemplate) -> list[str]:
    """A line for each easy-to-read Swedish text (an email, or a follow-up's questions taken
    together) whose LIX is above EASY_LIMIT."""
    warnings = []
    easy = f"sv-{i18n.EASY}"
    for name in participant_emails(template):
        if easy not in template.languages(name):
            continue
        path = template.emails.path(name, easy)
        score = lix(readable_text(path.read_text(encoding="utf-8")))
        if score is not None and score > EASY_LIMIT:
            warnings.append(
                f"warning: {path.name}: LIX {score:.0f}, above {EASY_LIMIT} for easy-to-read "
                "Swedish (shorter sentences, shorter words)"
            )
    for stage in template.spec.stages:
        asked = [template.questions[q] for q in stage.questions if q in template.questions]
        texts = [q.localised(easy) for q in asked if easy in q.languages()]
        lines = [f"{t['text']}\n\n{t['low']}\n\n{t['high']}" for t in texts]
        score = lix("\n\n".join(lines)) if lines else None
        if score is not None and score > EASY_LIMIT:
            warnings.append(
                f"warning: the easy-to-read questions of {stage.key}: LIX {score:.0f}, above "
                f"{EASY_LIMIT}"
            )
    return warnings
