"""Plain-mode text of a PDF page, with the word breaks pypdf misses in tables.

pypdf's plain-mode extraction (``PageObject.extract_text``) writes a space between two
pieces of text on one line only when the second starts more than half a space to the
right of where the first ended (``crlf_space_check`` in ``pypdf/_text_extraction``),
and inside a ``TJ`` array only for an offset of more than half a space.  That glues
words in four ways, all seen in ``shared/corpus/pdfs``:

1. **Cells drawn out of reading order.**  Table-making programs often draw a row's
   amount first, then the name to its left, each at its own text position (``Tm``,
   ``Td``).  A move back to the left counts as no gap at all:
   "37,499.96DISTRICT DIRECTORBAIN, J MATTHEW" (a US Senate expenditure report),
   "KASHKARI 247REP" (an election bulletin), "Permanent07/13/2015" (a WARN report).
2. **The wrong font's space.**  A cell is often its own ``q BT Tm Tf ... ET Q``: at its
   ``Tm`` the font size is the one ``Q`` restored (pypdf's default, 12), not the one
   that drew the previous cell, so half a 12-point space is required between two
   6-point cells: "HandgunLong Gun*Other**MultipleAdmin" (an FBI table).
3. **Wide "space" glyphs.**  pypdf takes a font's space width from the glyph at the
   space's code, which in TeX's T1-encoded fonts is the visible space "␣" (half an em)
   and in math fonts up to a full em; a justified line's shrunk word spaces (0.22 em)
   then fall below half of it: "EinRaumX heißtzusammenhängend,wenneskeineoffenen".
4. **Columns set by character spacing.**  The FBI table places digits in columns
   with a character spacing (``Tc``) of 2 to 5 em, which pypdf never reads as a gap:
   "02,2481,135" for "0 2,248 1,135".

:func:`page_text` runs pypdf's own extraction with a subclass of its ``TextExtraction``
that changes only where spaces go: after pypdf has kept a piece of text on the line
without a space, it adds one when the piece moved, along the text's own direction
(pypdf measures along the page's axis, so upside-down text never got a gap-space),
more than half a space forward or more than :data:`BACKWARD_EMS` back from where the
previous piece ended, both in the font that drew the previous piece (1, 2); half a
space is at most :data:`HALF_SPACE_CAP` (3); a string drawn with a character spacing
of :data:`SPREAD_EMS` or more gets a space between its glyphs (4).  Line breaks,
reading order, hyphenation and ligatures are pypdf's.

pypdf builds its extractor by name in ``pypdf._page``; the subclass is put there on
the first call, for the whole process.  If a pypdf release drops what it relies on,
nothing is replaced and the text is pypdf's own (``tests/test_pdftext.py`` notices).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

# A piece of text that starts this many ems (of the previous piece's font) or more
# before the end of the previous piece on the same line starts a new word.  In the
# corpus, table cells drawn right to left move back 4 em or more; an accent drawn over
# the letter before it 0.4 to 0.5 em ("Erd˝os", "Aviac¸ão"), which must stay one
# word.  TeX's math moves back 0.2 to 2.5 em (scripts, wide accents): a space there
# only separates symbols.
BACKWARD_EMS = 1.0
# Half a space is capped at this, in thousandths of an em: the smallest word gap
# (Helvetica's half space is 139, Times' 125; TeX shrinks word spaces to 0.22 em).
HALF_SPACE_CAP = 150.0
# A character spacing (Tc) of this many ems or more sets every glyph of a string apart;
# letter-spaced headings use a fraction of an em.
SPREAD_EMS = 1.0

# pypdf's own extractor class once replaced; None before the first call, False when
# this pypdf lacks what the subclass needs.
_pypdf_extractor: type | bool | None = None
_install_lock = threading.Lock()


def _word_break(
    previous: list[float],
    current: list[float],
    width: float,
    font_size: float,
    half_space: float,
) -> bool:
    """Whether text now at ``current`` starts a new word after ``width`` of text.

    ``previous`` and ``current`` are the text-to-device matrices (text matrix times
    CTM) where the previous piece and the new one start; ``width`` (the previous
    piece's advance) and ``half_space`` are in text space units of the previous
    piece's font, whose size is ``font_size``.
    """
    along = math.hypot(current[0], current[1])
    scale = math.hypot(previous[0], previous[1])
    height = math.hypot(previous[2], previous[3])
    if along == 0 or scale == 0:
        return False
    # The move along the text's own direction, so that upside-down or rotated text
    # counts a move forward as forward.
    dx, dy = current[4] - previous[4], current[5] - previous[5]
    gap = (dx * current[0] + dy * current[1]) / along - width * scale
    return gap >= half_space * scale or gap < -BACKWARD_EMS * font_size * height


def _spaced_extraction_class(base: type) -> type:
    """pypdf's ``TextExtraction`` with the word breaks of the module docstring."""
    from pypdf._text_extraction import mult

    class SpacedTextExtraction(base):  # type: ignore[misc, valid-type]
        """pypdf's extractor, adding spaces where its text jumps along a line."""

        # The font of the text shown last: its size and half its space, in text space.
        _shown_size: float | None = None
        _shown_half_space = 0.0

        def _handle_tf(self, operands: list[Any]) -> None:
            super()._handle_tf(operands)
            self._space_width = min(self._space_width, HALF_SPACE_CAP)

        def _handle_tj_operation(self, operands: list[Any]) -> float:
            # pypdf before 7 does not track Tc: no spreading there.
            char_spacing = getattr(self, "char_spacing", 0.0)
            spread = self.font_size > 0 and char_spacing >= SPREAD_EMS * self.font_size
            start, flushed = len(self.text), len(self.output)
            result = super()._handle_tj_operation(operands)
            if spread and len(self.output) == flushed and len(self.text) - start > 1:
                self.text = self.text[:start] + " ".join(self.text[start:])
            self._shown_size = self.font_size
            self._shown_half_space = self.compute_str_widths(self.font_size * self._space_width)
            return result

        def _post_process_text_operation(self, str_widths: float) -> None:
            # pypdf replaces (never edits) tm_prev and cm_prev: these stay the start of
            # the previous piece.
            tm_prev, cm_prev = self.tm_prev, self.cm_prev
            super()._post_process_text_operation(str_widths)
            # pypdf has now ended the line, added its own space, or kept the piece on
            # the line without one: only in the last case can a break be missing.
            last = self.text[-1:] or self.output[-1:]
            if last in ("", " ", "\n") or self._shown_size is None:
                return
            if str_widths == 0 and tm_prev == self.tm_matrix and cm_prev == self.cm_matrix:
                return  # a Tj: nothing moved
            if _word_break(
                mult(tm_prev, cm_prev),
                mult(self.tm_matrix, self.cm_matrix),
                str_widths,
                self._shown_size,
                self._shown_half_space,
            ):
                self.text += " "

    return SpacedTextExtraction


# What the subclass needs of pypdf's extractor (pypdf 6.1 to 7.1 have it all).
_NEEDED = (
    "_handle_tf",
    "_handle_tj_operation",
    "_post_process_text_operation",
    "compute_str_widths",
    "font_size",
    "_space_width",
    "text",
    "output",
    "tm_matrix",
    "cm_matrix",
    "tm_prev",
    "cm_prev",
)


def install() -> bool:
    """Make pypdf's plain-mode extraction use the spaced extractor (once per process).

    Returns whether it is in use: False when this pypdf lacks what it needs, and the
    text is then pypdf's own.
    """
    global _pypdf_extractor
    if _pypdf_extractor is not None:  # the usual case: decided on an earlier call
        return _pypdf_extractor is not False
    with _install_lock:
        if _pypdf_extractor is None:
            import pypdf._page as pypdf_page

            base = getattr(pypdf_page, "TextExtraction", None)
            try:
                probe = base() if isinstance(base, type) else None
                spaced = _spaced_extraction_class(base) if probe is not None else None
            except Exception:  # e.g. pypdf._text_extraction.mult moved
                probe = spaced = None
            if spaced is None or not all(hasattr(probe, name) for name in _NEEDED):
                logger.warning("pypdf's TextExtraction changed: words in tables may come out glued")
                _pypdf_extractor = False
            else:
                _pypdf_extractor = base
                pypdf_page.TextExtraction = spaced
    return _pypdf_extractor is not False


@contextlib.contextmanager
def pypdf_own_spacing() -> Iterator[None]:
    """Inside the block, pypdf extracts with its own spacing (for measurements only).

    Not thread-safe: it swaps pypdf's extractor for the whole process.
    """
    import pypdf._page as pypdf_page

    install()
    spaced = pypdf_page.TextExtraction
    if isinstance(_pypdf_extractor, type):
        pypdf_page.TextExtraction = _pypdf_extractor
    try:
        yield
    finally:
        pypdf_page.TextExtraction = spaced


def page_text(page: Any) -> str:
    """The plain-mode text of a pypdf page, with a space between table cells."""
    install()
    return page.extract_text()
