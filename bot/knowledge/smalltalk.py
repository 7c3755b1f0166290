"""Messages that ask nothing of the documents: a greeting, thanks, "what can you do?",
"which documents do you have?", or no words at all.

A new user's first message is often "hi".  Searched for, it got "I could not find
this ... No document mentions: hi", which reads as a broken bot (seen by hand in
session 13).  A message that is only such a phrase, in English or Chinese, gets a
short fixed reply instead (for "which documents?", the workspace's list): no search,
no model.  Anything more ("hi, what does the
warranty cover?") is a question, and is searched as one.
"""

from __future__ import annotations

import re

from bot.knowledge.language import fold
from bot.knowledge.question import without_politeness

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
# "which documents do you have?", "list the files": the workspace's list, not a search
# (seen by hand in session 14: "list the documents" got "not found" and a closest
# passage).
_LISTING = {"list", "show", "show me", "give me", "what are", "which are", "name"}
_DOCUMENTS = {"documents", "docs", "files", "sources", "pdfs"}
_WHICH = {"what", "which"}
_HAVE = {"do you have", "are there", "are here", "have been shared", "were shared", "do you know"}
_HAVE |= {"can you see", "can you read", "have you indexed", "did you index", "are indexed"}
PHRASES["documents"] = frozenset(
    {
        f"{verb} {the}{docs}"
        for verb in _LISTING
        for the in ("", "the ", "all ", "all the ", "your ")
        for docs in _DOCUMENTS
    }
    | {f"{which} {docs} {have}" for which in _WHICH for docs in _DOCUMENTS for have in _HAVE}
    | {f"{which} {docs}" for which in _WHICH for docs in _DOCUMENTS}
    | (_DOCUMENTS - {"sources"})  # "sources?" after an answer asks for its sources
    | {
        "有哪些文件",
        "你有哪些文件",
        "列出文件",
        "文件列表",
        "列出所有文件",
        "有什么文件",
        "这里有哪些文件",
    }
)
# What may stand around the phrase: the bot's name, punctuation, emoji.
_NAME = re.compile(r"^(?:librarian|bot)\b\s*|\s*\b(?:librarian|bot)$")
_NOT_WORD = re.compile(r"[^\w\s]+")


def _normal(message: str) -> str:
    text = _NOT_WORD.sub(" ", fold(message).lower())
    text = " ".join(text.split())
    return " ".join(_NAME.sub("", text).split())


def smalltalk(message: str) -> str | None:
    """The kind of message ("greeting", "thanks", "capabilities", "documents") when it is
    only such a phrase (with the bot's name, punctuation or emoji around it); "blank"
    when it has no word at all ("?", "👍": nothing to search for); None for anything
    else, which is a question."""
    text = _normal(message)
    if not text:
        return "blank"
    # Politeness leaves the phrase what it is: "can you list the files, please?".
    for candidate in (text, without_politeness(text)):
        for kind, phrases in PHRASES.items():
            if candidate in phrases:
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
