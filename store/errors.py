"""Errors samverkan reports to its users.

They live at the bottom layer so that store, messaging and flows raise the same family, and
the CLI turns any of them into one line and exit status 2::

    SamverkanError
    ├── ConfigError            a setting (SAMVERKAN_*) is unusable
    ├── NotFound               unknown cycle, stage, participant or template
    ├── InvalidInput           a date, time zone, variable or option is malformed
    │   ├── ImportRejected     a participants file has bad rows (one line per row)
    │   └── PersonRejected     one person's fields are bad (a reason per field)
    ├── TemplateError          a process template or email template is broken
    └── StateError             the operation does not fit the current state
"""

from __future__ import annotations


class SamverkanError(Exception):
    """Base of every error shown to a user as one line."""


class ConfigError(SamverkanError):
    """A setting is missing or malformed."""


class NotFound(SamverkanError):
    """Something named by the user does not exist."""


class InvalidInput(SamverkanError):
    """Input from the command line or a file is malformed."""


class ImportRejected(InvalidInput):
    """A participants file has invalid rows; nothing was imported."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class PersonRejected(InvalidInput):
    """One participant's fields (typed into a form) are invalid; nothing was changed."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems  # by field: name, email, organisation, role, language
        super().__init__("; ".join(problems.values()))


class TemplateError(SamverkanError):
    """A process template or one of its emails is broken."""


class StateError(SamverkanError):
    """The operation does not fit the current state of the cycle or stage."""


class PermissionDenied(SamverkanError):
    """The person named may not do this (their role or organisation does not allow it)."""
