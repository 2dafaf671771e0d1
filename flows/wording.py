"""Small helpers for what people read."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 message', '2 messages' (or the given plural form)."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"
