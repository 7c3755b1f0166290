"""Camel-case names are also cut after a run of capitals: ``HTTPServer`` -> ``http server``.

0014 cut a name only where a lower-case letter meets a capital, so
``PandocPDFProgramNotFoundError`` gave ``pandoc``, ``pdfprogram``, ``not``, ``found``,
``error``, and "which exit code does pandoc give when the PDF program is not found?"
met neither "pdf" nor "program" in the error-code table (seen by hand in session 13, on
the corpus's pandoc error-code RTF).  Names that start with or hold an acronym
(``HTTPServer``, ``XMLParser``, ``MySQLDatabase``) are common in the error codes, class
names and API fields a team shares.

Now a capital followed by a capital and two lower-case letters is cut too:
``PDFProgram`` -> ``PDF Program``, ``HTTPServer`` -> ``HTTP Server``.  Two lower-case
letters, so that the plural of an acronym stays whole: ``PDFs``, ``IDs`` and ``URLs``
give no stray letters.  As in 0014, the whole name stays a lexeme, questions are read
without these words, and text without such a name gets exactly the vector it had.

The columns are regenerated and the keyword totals counted again, as 0008 and 0014 did.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _migration(stem: str) -> ModuleType:
    """An earlier migration's module (its analyzer and its way of regenerating)."""
    path = Path(__file__).with_name(f"{stem}.py")
    spec = importlib.util.spec_from_file_location(f"librarian_migration_{stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# 0014's test for a camel-case name, and the tokens and cuts of its words; then 0015's.
_HAS_NAME_0014 = "IF body ~ '[a-z][A-Z]' THEN"
_HAS_NAME = "IF body ~ '[a-z][A-Z]|[A-Z][A-Z][a-z]{2}' THEN"
_TOKENS_0014 = "'([A-Za-z0-9]*[a-z][A-Z][A-Za-z0-9]*)'"
_TOKENS = "'([A-Za-z0-9]*(?:[a-z][A-Z]|[A-Z][A-Z][a-z]{2})[A-Za-z0-9]*)'"
_CUT_0014 = r"regexp_replace(m[1], '([a-z])([A-Z])', '\1 \2', 'g')"
_CUT = (
    r"regexp_replace(regexp_replace(m[1], '([a-z])([A-Z])', '\1 \2', 'g'), "
    r"'([A-Z])([A-Z][a-z]{2})', '\1 \2', 'g')"
)


def _analyzer(m0008: ModuleType, m0014: ModuleType) -> str:
    """0014's analyzer, its camel-case words also cut after a run of capitals."""
    body = m0014._analyzer(m0008.LETTER, m0008.HIDDEN)
    for old, new in ((_HAS_NAME_0014, _HAS_NAME), (_TOKENS_0014, _TOKENS), (_CUT_0014, _CUT)):
        assert body.count(old) == 1, old
        body = body.replace(old, new)
    return body


def upgrade() -> None:
    m0008, m0014 = _migration("0008_cjk_keyword_analyzer"), _migration("0014_camel_case_words")
    op.execute(_analyzer(m0008, m0014))
    m0008._set_analyzer("librarian_tsvector(text)")


def downgrade() -> None:
    m0008, m0014 = _migration("0008_cjk_keyword_analyzer"), _migration("0014_camel_case_words")
    op.execute(m0014._analyzer(m0008.LETTER, m0008.HIDDEN))
    m0008._set_analyzer("librarian_tsvector(text)")
