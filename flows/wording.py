"""Small helpers for what people read."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 message', '2 messages' (or the given plural form)."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


# How a stage that is due but waits for sign-off says so in its note (cycle show, the
# overview): signatures missing, or a message that is not the signed text.
WAITING_FOR_SIGNOFF = "waiting for sign-off from "
NOT_THE_SIGNED_TEXT = "not sent: "
