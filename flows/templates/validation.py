"""``samverkan templates validate``: check a template the way a launch would use it."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from flows.cycles.launch import launch_cycle
from flows.settings import Settings
from flows.templates import LANGUAGES, find_template, load_template
from store.db import open_store, session_scope
from store.models import Organisation, Participant, Role, pk

HOSTILE_NAME = 'Åsa "<b>{{ 7*7 }}</b>" Öberg =?UTF-8?Q?=0A?='


def validate_template(settings: Settings, name_or_path: str) -> str:
    """Load the template and launch it, in a throwaway database, for sample participants of
    every role and language (one with a hostile name) with the variables' example values.

    Returns a one-paragraph report; raises TemplateError or InvalidInput on the first problem.
    """
    folder = find_template(settings.templates_dir, name_or_path)
    template = load_template(folder)
    examples = {k: v.example for k, v in template.spec.variables.items()}
    with tempfile.TemporaryDirectory(prefix="samverkan-validate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'check.db'}"
        engine = open_store(url)
        with session_scope(engine) as session:
            org = Organisation(name="Exempelkommunen")
            session.add(org)
            session.flush()
            for i, (role, lang) in enumerate((r, lang) for r in Role for lang in LANGUAGES):
                session.add(
                    Participant(
                        name=HOSTILE_NAME if i == 0 else f"Sample {role.value} {lang}",
                        email=f"sample{i}@example.org",
                        email_key=f"sample{i}@example.org",
                        organisation_id=pk(org),
                        role=role,
                        language=lang,  # type: ignore[arg-type]
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
    languages = [lang for lang in LANGUAGES if any(lang == got for _, got in rendered)]
    return (
        f"{template.name}: valid: {len(stages)} stages, {len(rendered)} "
        f"emails ({', '.join(languages)}) rendered for {len(Role) * len(LANGUAGES)} sample "
        f"participants"
    )
