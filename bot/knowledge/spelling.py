"""Question words a sentence holds written otherwise than the keyword index sees them:
glued to a neighbour or without their accents by the text ("DIRECTORBAIN" holds
"Bain"; "Nestlé" is "Nestle"), or a footnote's mark the question names in words
("the double asterisk": "**Multiple").  The evidence step (``bot.knowledge.evidence``)
counts them as held."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.knowledge.language import fold

# A word shorter than this is not looked for inside other words (see glued_words).
GLUED_MIN_CHARS = 4


_POSSESSIVE = re.compile(r"['\u2019]s$")


def glued_words(
    words: list[str],
    word_lexemes: list[frozenset[str]],
    missing: set[str],
    sentences: Sequence[tuple[str, Any, int]],
) -> dict[str, str]:
    """The missing lexemes whose word is in the retrieved text after all, written
    otherwise: glued to a neighbour by the PDF's text extraction ("DIRECTORBAIN, J
    MATTHEW" holds "Bain"), or with accents the question left out ("Nestle's" of a
    document that writes "Nestlé", which the keyword index keeps apart): lexeme -> the
    word, folded (``fold``).  Only words of letters, GLUED_MIN_CHARS or longer, at a
    word's start or end in the text (a glued word touches a space or punctuation on
    one side)."""
    found: dict[str, str] = {}
    wanted = [
        (_POSSESSIVE.sub("", fold(w)), lx & missing)
        for w, lx in zip(words, word_lexemes, strict=True)
        if lx & missing and _POSSESSIVE.sub("", w).isalpha() and len(w) >= GLUED_MIN_CHARS
    ]
    if not wanted:
        return found
    text = fold("\n".join(s for s, _, _ in sentences))
    for word, lexemes in wanted:
        edge = re.compile(rf"(?<![^\W\d_]){re.escape(word)}|{re.escape(word)}(?![^\W\d_])")
        if edge.search(text):
            found.update(dict.fromkeys(lexemes, word))
    return found


# A footnote's mark, as a question names it ("What does the double asterisk mean in
# the table?"): the text writes the mark, never its name.  Seen on the calibrate split:
# the NICS table's "**Multiple (multiple types of firearms selected)" was not quoted.
SYMBOLS = {"asterisk": "*", "asterisks": "*", "dagger": "†", "daggers": "†"}
_DOUBLE = frozenset({"double", "two"})


def named_marks(
    words: list[str],
    word_lexemes: list[frozenset[str]],
    sentences: Sequence[tuple[str, Any, int]],
    already: dict[str, re.Pattern[str]],
) -> dict[str, re.Pattern[str]]:
    """The lexemes of the question's names of marks ("asterisk", and "double" before
    it) -> the mark opening a note's word as the text writes it ("**Multiple", not the
    column head "Multiple**"), for marks the retrieved text holds so."""
    found: dict[str, re.Pattern[str]] = {}
    text = "\n".join(s for s, _, _ in sentences)
    lowered = [w.lower() for w in words]
    for i, word in enumerate(lowered):
        mark = SYMBOLS.get(word)
        if mark is None:
            continue
        double = i > 0 and lowered[i - 1] in _DOUBLE
        note = re.compile(rf"(?<![^\s(]){re.escape(mark * (2 if double else 1))}(?=[^\W\d_(])")
        if not note.search(text):
            continue
        for j in (i - 1, i) if double else (i,):
            found.update({lex: note for lex in word_lexemes[j] if lex not in already})
    return found
