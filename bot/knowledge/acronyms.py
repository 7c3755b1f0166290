"""Abbreviations a document defines ("a new airworthiness directive (AD)"), so that a
question's long form finds the sentences that write the short one, and back.

A directive, a report or a paper spells a name out once and abbreviates it after: the
sentence that answers "How many airplanes are affected by the airworthiness directive?"
says "this proposed AD affects 73 airplanes" (seen by hand in session 14: it was not
quoted; the title line, holding "Airworthiness Directives" and "Airplanes", was).  The
definitions are read from the retrieved text itself, with the Schwartz–Hearst rule
(each letter of the short form, in order, in the words before the parenthesis, the
first at a word's start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# "(AD)", "(AOA)", "(or AOA)", "(NICS)"; "(U.S.)" is not one: capitals and digits, two
# or more.
_SHORT = re.compile(r"\(\s*(?:or\s+)?([A-Z][A-Z0-9&]{1,9})\s*\)")
# Words between the long form and its parenthesis that belong to neither.
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def _long_form(short: str, before: str) -> str | None:
    """The shortest end of ``before`` whose letters hold ``short``'s in order, its first
    at a word's start (Schwartz & Hearst, 2003); None when none does."""
    s = len(short) - 1
    i = len(before) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while i >= 0 and (before[i].lower() != c or (s == 0 and i > 0 and before[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    start = before.rfind(" ", 0, i + 1) + 1
    return before[start:].strip()


def definitions(texts: Iterable[str]) -> dict[str, list[str]]:
    """Each short form the texts define -> the words of its long form, lowercased
    ("AD" -> ["airworthiness", "directive"]); the first definition of each wins."""
    found: dict[str, list[str]] = {}
    for text in texts:
        for m in _SHORT.finditer(text):
            short = m.group(1)
            if short in found:
                continue
            long = long_form_before(short, text[: m.start()])
            if long:
                found[short] = [w.lower() for w in _WORD.findall(long)]
    return found


def long_form_before(short: str, before: str) -> str | None:
    """The long form ``before`` ends with, for a short form in parentheses after it
    ("the angle of attack (AOA)" -> "angle of attack"), or None.  One word is no
    definition ("Boeing (BA)"), nor one holding the short form."""
    words = before.split()
    window = " ".join(words[-min(len(short) + 5, 2 * len(short)) :])
    long = _long_form(short, window)
    long_words = [w.lower() for w in _WORD.findall(long or "")]
    if len(long_words) >= 2 and short.lower() not in long_words:
        return long
    return None


def _singular(word: str) -> str:
    """ "directives" -> "directive"; "airworthiness" stays."""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _same(word: str, other: str) -> bool:
    """One word, singular or plural ("directive", "directives")."""
    return _singular(word) == _singular(other)


def expansions(defined: dict[str, list[str]], words: list[str], sentence: str) -> list[int]:
    """The indexes of the question's ``words`` a sentence holds through a definition:
    the long form's words where the sentence writes the short form and the question
    the long one, and the short form where it is the other way round."""
    held: list[int] = []
    lowered = [w.lower() for w in words]
    folded_sentence = sentence.lower()
    for short, long_words in defined.items():
        in_question = [i for i, w in enumerate(lowered) if any(_same(w, lw) for lw in long_words)]
        covers_long = {lw for lw in long_words for w in lowered if _same(w, lw)}
        if len(covers_long) == len(set(long_words)) and re.search(
            rf"\b{re.escape(short)}s?\b", sentence
        ):
            held.extend(in_question)
        if short in words and re.search(
            r"\b" + r"\s+".join(re.escape(_singular(w)) + r"s?" for w in long_words) + r"\b",
            folded_sentence,
        ):
            held.append(words.index(short))
    return sorted(set(held))


def with_definitions(
    sentences: list[str],
    lexeme_sets: list[frozenset[str]],
    words: list[str],
    word_lexemes: list[frozenset[str]],
) -> list[frozenset[str]]:
    """Each sentence's lexemes with those of the question's words it holds through an
    abbreviation the sentences define (``words`` and ``word_lexemes``: the question's
    words and the lexemes of each)."""
    defined = definitions(sentences)
    if not defined:
        return lexeme_sets
    return [
        lx.union(*(word_lexemes[j] for j in expansions(defined, words, text)))
        for text, lx in zip(sentences, lexeme_sets, strict=True)
    ]
