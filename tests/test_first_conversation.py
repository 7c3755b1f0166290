"""A new user's first minutes: a greeting, a question before any file is shared, a
question while the file is still being indexed, thanks, "which documents do you have?",
a message with no words.

Seen by hand in session 13: "hi" got "I could not find this ... No document mentions:
hi", and a first question in an empty workspace was told "No document mentions: ..."
as if documents had been searched.  Seen in session 14: "list the documents" got "not
found" and a closest passage, and "/librarian documents" only "I don't know the
command".  Real Postgres, the real models, the console adapter.
"""

from __future__ import annotations

from pathlib import Path

from helpers import make_pdf, say

from bot.app import App
from bot.events import ConversationRef
from bot.knowledge.smalltalk import smalltalk, without_opener
from bot.knowledge.texts import NOT_FOUND, TEXTS

GENERAL = ConversationRef("console", "", "general")


def _chat_served(app: App) -> int:
    return sum(m["served"] for m in app.inference.loaded() if m["role"] == "chat")


async def test_a_new_user_is_greeted_told_to_share_a_file_and_then_answered(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        reply = await say(app, "@librarian hi!")
        assert TEXTS["en"]["greeting"] in reply and NOT_FOUND not in reply
        assert "你好！" in await say(app, "@librarian 你好")

        reply = await say(app, "@librarian What is the warranty period?")
        assert NOT_FOUND in reply and TEXTS["en"]["empty"] in reply
        assert "No document mentions" not in reply  # nothing was there to mention it

        await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        reply = await say(app, "@librarian hi, how long is the warranty?")  # a question
        assert TEXTS["en"]["greeting"] not in reply and NOT_FOUND not in reply
        assert "manual.pdf" in reply

        served = _chat_served(app)
        assert "You're welcome" in await say(app, "@librarian thanks! 🙏")
        assert TEXTS["en"]["capabilities"] in await say(app, "@librarian what can you do?")
        assert _chat_served(app) == served  # no model call for either
    finally:
        await app.close()


async def test_a_user_asks_which_documents_there_are_and_sends_no_words(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        reply = await say(app, "@librarian which documents do you have?")
        assert reply.strip() == f"librarian: {TEXTS['en']['empty']}"  # no list, no search

        await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        served = _chat_served(app)
        reply = await say(app, "@librarian could you please list the files?")
        assert "This workspace has one document: manual.pdf.\nAsk me about it;" in reply
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'budget.pdf')}")
        reply = await say(app, "@librarian Can you list the files, please?")
        assert "This workspace has 2 documents: budget.pdf, manual.pdf." in reply
        assert "/librarian docs" in reply and NOT_FOUND not in reply
        assert "2 个文件：budget.pdf, manual.pdf" in await say(app, "@librarian 有哪些文件？")

        # "?" or an emoji alone asks nothing: say how to ask, search nothing.
        for blank in ("?", "👍"):
            reply = await say(app, f"@librarian {blank}")
            assert reply.strip() == f"librarian: {TEXTS['en']['blank']}"
        assert _chat_served(app) == served

        # A command typed by another name is pointed to the one that does it.
        reply = await say(app, "/librarian documents")
        assert "I don't know the command 'documents'" in reply
        assert "Did you mean /librarian docs?" in reply
        assert "Did you mean /librarian status?" in await say(app, "/librarian stauts")
    finally:
        await app.close()


async def test_a_question_asked_while_the_only_file_is_indexing_says_so(settings) -> None:
    # No background worker: the shared file stays queued.
    app = App.build(settings)
    try:
        binding = await app.dispatcher.binding(GENERAL)
        await app.ingest.submit(binding.workspace, b"The warranty lasts two years.", "w.txt")
        answer = await app.answerer.answer(
            binding, None, "How long is the warranty?", author="x", conversation_key="q"
        )
        assert not answer.found
        assert answer.text == f"{NOT_FOUND}\n{TEXTS['en']['indexing'].format(count=1)}"
    finally:
        await app.close()


def test_only_a_message_that_is_nothing_but_smalltalk_skips_the_search() -> None:
    assert smalltalk("Good morning, Librarian!") == "greeting"
    assert smalltalk("Thank you very much.") == "thanks"
    assert smalltalk("谢谢！") == "thanks"
    assert smalltalk("Who are you?") == "capabilities"
    assert smalltalk("What documents are there?") == "documents"
    assert smalltalk("...") == "blank"
    for question in ("what are the documents about?", "list the documents about taxes"):
        assert smalltalk(question) is None, question  # questions of the documents
    for question in ("hi, what is the warranty?", "help me find the budget", "thanks for what?"):
        assert smalltalk(question) is None, question
    # A greeting before a question is not searched for; "Morning sessions" are asked about.
    assert without_opener("Hi Librarian, how long is the warranty?") == "how long is the warranty?"
    assert without_opener("你好，保修期多长？") == "保修期多长？"
    assert without_opener("Morning sessions start when?") == "Morning sessions start when?"
