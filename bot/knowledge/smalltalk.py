"""Messages that ask nothing of the documents: a greeting, thanks, "what can you do?".

A new user's first message is often "hi".  Searched for, it got "I could not find
this ... No document mentions: hi", which reads as a broken bot (seen by hand in
session 13).  A message that is only such a phrase, in English or Chinese, gets a
short fixed reply instead: no search, no model.  Anything more ("hi, what does the
warranty cover?") is a question, and is searched as one.
"""

from __future__ import annotations

import re

from bot.knowledge.language import fold

# The phrases of each kind, as ``_normal`` leaves them.
PHRASES: dict[str, frozenset[str]] = {
    "greeting": frozenset(
        {"hi", "hello", "hey", "hiya", "yo", "hi there", "hello there", "hey there"}
        | {"good morning", "good afternoon", "good evening", "morning"}
        | {"你好", "您好", "嗨", "哈喽", "早上好", "下午好", "晚上好", "大家好"}
    ),
    "thanks": frozenset(
        {"thanks", "thank you", "thx", "ty", "cheers", "thanks a lot", "thank you so much"}
        | {"thank you very much", "many thanks", "great thanks", "ok thanks", "thanks again"}
        | {"谢谢", "多谢", "谢谢你", "谢谢您", "感谢", "非常感谢"}
    ),
    "capabilities": frozenset(
        {"what can you do", "who are you", "what are you", "help", "how do i use you"}
        | {"how does this work", "what do you do", "how can you help", "how can you help me"}
        | {"你能做什么", "你是谁", "帮助", "你会什么", "怎么用"}
    ),
}
# What may stand around the phrase: the bot's name, punctuation, emoji.
_NAME = re.compile(r"^(?:librarian|bot)\b\s*|\s*\b(?:librarian|bot)$")
_NOT_WORD = re.compile(r"[^\w\s]+")


def _normal(message: str) -> str:
    text = _NOT_WORD.sub(" ", fold(message).lower())
    text = " ".join(text.split())
    return " ".join(_NAME.sub("", text).split())


def smalltalk(message: str) -> str | None:
    """ "greeting", "thanks" or "capabilities" when the message is only such a phrase
    (with the bot's name, punctuation or emoji around it); None for anything else."""
    text = _normal(message)
    for kind, phrases in PHRASES.items():
        if text in phrases:
            return kind
    return None


# A greeting or thanks that opens a longer message, then the bot's name or punctuation:
# "Hi Librarian, how long is the warranty?", "thanks! and in Canada?".  Not without one
# ("Morning sessions start when?" asks about mornings).
_OPENERS = sorted(PHRASES["greeting"] | PHRASES["thanks"], key=len, reverse=True)
_OPENING = re.compile(
    r"^\s*(?:" + "|".join(re.escape(p) for p in _OPENERS) + r")"
    r"(?:\s+(?:librarian|bot)\b[\s,.!:;，。！：；~]*|\s*[,.!:;，。！：；~]+\s*)(?=\S)",
    re.I,
)


def without_opener(message: str) -> str:
    """The message without a greeting or thanks it opens with ("hi, how long is the
    warranty?" -> "how long is the warranty?"); the message itself otherwise.  A word
    no document holds weighs the most in the evidence step, so an opening "hi" made a
    question "not found" (seen by hand in session 13)."""
    rest = _OPENING.sub("", message, count=1)
    return rest if any(ch.isalnum() for ch in rest) else message
