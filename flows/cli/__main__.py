"""``python -m flows.cli``: the same as the ``samverkan`` command."""

from flows.cli import main

main()
