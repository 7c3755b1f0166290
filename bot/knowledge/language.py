"""Which language a text is written in, roughly enough to know when words cannot match.

The evidence step measures how much of a question the documents hold by comparing
words (``bot.knowledge.evidence``).  That only means something when question and
passage share a language: an English question about a French council's minutes ("Who
acted as secretary of the demolition committee?") shares no word with its answer
("Secrétaire : ..."), so lexical coverage calls it unanswered although the passage is
the right one.  When the passage is in another language than the question, the
answer's check falls back on semantic similarity alone.

Detection is deliberately small: scripts first (CJK, Arabic, Cyrillic, Greek, Hebrew),
then, for Latin text, counts of a few dozen function words per language.  Text with
too few of them (a table of numbers, a list of names) has no detected language and is
treated as matching the question, so tables keep their lexical check.  No package and
no model: this runs on every question, within the evidence step's 20 ms budget.
"""

from __future__ import annotations

import re
import unicodedata

from bot.knowledge.sentences import CJK

# The commonest function words of each language (articles, prepositions, pronouns,
# auxiliaries).  A word in two lists belongs to the first only, so one count cannot
# serve two languages.
_FUNCTION_WORD_LISTS: dict[str, str] = {
    "en": "the of and to in is that for it with as was on are be by this from at or which "
    "an not have has were been their they its but these can will would there",
    "fr": "le la les des du est et un une dans pour au aux sur par qui que ne pas sont "
    "avec ce cette ces il elle nous vous leur été être",
    "de": "der die das und ist nicht mit den dem ein eine einer eines sich auf für von zu "
    "auch wird werden sind wir ich es im zum zur bei oder",
    "es": "el los las del y en es por con para una uno su sus se lo como más pero fue "
    "ser está son este esta",
    "it": "il gli della delle dei di che è per con non una sono nel nella alla questo "
    "questa anche come",
    "pt": "os das dos em não uma para com por mais como foi são seu sua ao pelo pela também isso",
    "nl": "de het een van en is dat niet met op voor zijn er aan ook als bij wordt worden",
}


def _exclusive(lists: dict[str, str]) -> dict[str, frozenset[str]]:
    seen: set[str] = set()
    out: dict[str, frozenset[str]] = {}
    for code, words in lists.items():
        out[code] = frozenset(w for w in words.split() if w not in seen)
        seen.update(words.split())
    return out


FUNCTION_WORDS = _exclusive(_FUNCTION_WORD_LISTS)

_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("zh", CJK),
    ("ar", re.compile(r"[\u0600-\u06ff\u0750-\u077f]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
]
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# At least this many function words, and this share of the words, to name a language.
MIN_HITS = 3
MIN_SHARE = 0.05
# A passage's language is told from its start: a few hundred words are plenty, and the
# regular expressions then cost well under a millisecond (8 whole chunks took ~80 ms).
SAMPLE_CHARS = 3000


def text_language(text: str) -> str | None:
    """The text's language code ('en', 'fr', 'zh', ...), or None when it cannot tell.

    A script other than Latin (a third of the letters or more) decides at once; Latin
    text is named by its function words.  Tables, lists and short fragments give None.
    Only the first SAMPLE_CHARS characters are read.
    """
    sample = text[:SAMPLE_CHARS]
    letters = len(_LETTER.findall(sample))
    if not letters:
        return None
    for code, script in _SCRIPTS:
        if len(script.findall(sample)) * 3 >= letters:
            return code
    words = [w.lower() for w in _WORD.findall(sample)]
    if not words:
        return None
    counts = {code: sum(1 for w in words if w in fw) for code, fw in FUNCTION_WORDS.items()}
    code, hits = max(counts.items(), key=lambda kv: kv[1])
    if hits < MIN_HITS or hits < MIN_SHARE * len(words):
        return None
    return code


def question_language(question: str) -> str:
    """A question's language.  Questions are short: a script decides, else the language
    with the most function words (one is enough when no other has any), else English."""
    found = text_language(question)
    if found is not None:
        return found
    words = [w.lower() for w in _WORD.findall(question)]
    counts = sorted(
        ((sum(1 for w in words if w in fw), code) for code, fw in FUNCTION_WORDS.items()),
        reverse=True,
    )
    (top, code), (second, _) = counts[0], counts[1]
    return code if top > second else "en"


def same_language(question: str, passage: str) -> bool:
    """Whether the passage can be compared word for word with the question (a passage
    whose language cannot be told, such as a table, counts as the same)."""
    found = text_language(passage)
    return found is None or found == question_language(question)


def fold(text: str) -> str:
    """Lower case without accents: "Nestlé" and "Nestle", "Sainte-Adèle" and
    "Sainte-Adele" are one word to a reader who types without accents.  (NFKD: a letter
    and its accent come apart and the accent goes; CJK text is unchanged.)"""
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(ch)
    )
