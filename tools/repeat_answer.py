"""Ask one question several times in a row, in one process, and print each draft.

Shows whether an answer depends on the answers generated before it (session 13: one
question asked three times got three drafts before ``ANSWER_SEED``; with it, the
second and third are the same).

    LIBRARIAN_HOME=H python tools/repeat_answer.py [--channel console:rd] [--times 3] \
        "With how many men was Johnston rumored to be coming to raise the siege of Vicksburg?"

H: a home where ``librarian ingest ../shared/corpus/pdfs/*.pdf --channel console:rd`` ran.
Nothing is remembered in the channel's history.
"""

from __future__ import annotations

import argparse

from bot.app import App
from bot.cli.common import parse_channel, with_app


def main() -> None:
    """Print, for each question and each asking: the check's verdict and the draft."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--channel", default="console:rd")
    parser.add_argument("--times", type=int, default=3)
    args = parser.parse_args()

    async def run(app: App) -> None:
        binding = await app.dispatcher.binding(parse_channel(args.channel))
        for question in args.questions:
            print(question)
            for i in range(args.times):
                answer = await app.answerer.answer(
                    binding, None, question, author="tool", conversation_key=f"r{i}", remember=False
                )
                print(f"  {i + 1}. {answer.checked}: {answer.draft!r}")

    with_app(run)


if __name__ == "__main__":
    main()
