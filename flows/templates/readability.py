"""How easy a Swedish text is to read: LIX (läsbarhetsindex, Björnsson 1968).

LIX = words per sentence + the percentage of long words (more than six letters). Easy-to-read
Swedish scores about 25 or less, ordinary newspaper text 40–50. ``samverkan templates
validate`` warns when an easy-to-read text (a language tag ending in ``-x-easy``) scores above
``EASY_LIMIT``.

A template is scored as its reader sees it: Jinja's tags and comments are taken out, each
value counts as one short word, a Markdown link as its text, and a paragraph or list item that ends
without a full stop (a greeting, a signature) as a sentence of its own.
"""

from __future__ import annotations

import re

EASY_LIMIT = 30
LONG = 6  # letters: a longer word is a long word

_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_BLOCK = re.compile(r"\{%.*?%\}", re.S)
_VALUE = re.compile(r"\{\{.*?\}\}", re.S)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_FRONT = re.compile(r"\A---\r?\n.*?\r?\n---\r?\n", re.S)
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?:]+(?=\s|$)")


def readable_text(source: str) -> str:
    """An email template's body (or any text) as a reader sees it, for scoring."""
    text = _FRONT.sub("", source)
    text = _COMMENT.sub("", text)
    text = _BLOCK.sub("", text)
    text = _VALUE.sub("X", text)
    text = _LINK.sub(r"\1", text)
    return text.replace("**", "")


_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _blocks(text: str) -> list[str]:
    """Paragraphs (their lines joined: templates wrap them) and list items, one each."""
    blocks: list[list[str]] = []
    open_paragraph = False
    for line in text.splitlines():
        if not line.strip():
            open_paragraph = False
            continue
        item = _ITEM.match(line)
        if item or not open_paragraph:
            blocks.append([])
        blocks[-1].append(line[item.end() :] if item else line.strip())
        open_paragraph = not item
    return [b for b in (" ".join(lines).strip() for lines in blocks) if _WORD.search(b)]


def lix(text: str) -> float | None:
    """The LIX of ``text``; None when it has no words."""
    words = _WORD.findall(text)
    if not words:
        return None
    sentences = 0
    for block in _blocks(text):
        ends = len(_SENTENCE_END.findall(block))
        if not _SENTENCE_END.search(block[-1:]):
            ends += 1  # a greeting, a list item or a heading ends a sentence of its own
        sentences += ends
    long_words = sum(1 for w in words if len(w) > LONG)
    return len(words) / max(sentences, 1) + 100 * long_words / len(words)
