"""The keyword analyzer also indexes the words of identifiers written in camel case.

``to_tsvector('english', ...)`` takes ``PandocTemplateError`` for one word (the lexeme
``pandoctemplateerror``), so "which error does pandoc give for a missing template?"
shared no word with the table row that answers it (seen by hand in session 10, on the
corpus's pandoc error-code RTF).  Error names, class names and API fields in a team's
documents are written that way.

``librarian_tsvector(text)``, the chunks' analyzer, is now the 0008 analyzer followed
(in the same function body: see ``_analyzer``) by the words of every token that has a
lower-case letter followed by a capital: ``PandocTemplateError`` -> ``pandoc template
error``, ``getUserName`` -> ``get user name``.  The whole token stays a lexeme, so a
question that writes the identifier still meets it.

Questions are analysed by 0008's analyzer alone, now named ``librarian_query_tsvector``:
a question that writes "ScienceParse" is about that name, and its common words
"science" and "parse" would only dilute it (measured: on the real-document set they
took the evidence to other sentences about science).

Only lower-to-upper boundaries are cut: ``HTTPServer`` stays one word, and ``PDFs`` or
``IDs`` give no stray letters.  Text without such a token gets exactly the vector it
had.  The extra words come after the text's own (``||`` numbers them on), so
``tsv_length`` counts them once.

The columns are regenerated and ``keyword_terms``/``keyword_stats`` counted again, as
0008 did.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _analyzer_0008() -> ModuleType:
    """Migration 0008's module: its analyzer and its way of regenerating the columns."""
    path = Path(__file__).with_name("0008_cjk_keyword_analyzer.py")
    spec = importlib.util.spec_from_file_location("librarian_migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_QUERY = "librarian_query_tsvector"
# The camel-case words of a text (tokens with a lower-case letter followed by a capital,
# cut at each such boundary; not after a digit: the parser already cuts "96DISTRICT",
# and would count it twice).
_CAMEL_WORDS = r"""to_tsvector('english', coalesce((
            SELECT string_agg(regexp_replace(m[1], '([a-z])([A-Z])', '\1 \2', 'g'), ' ')
            FROM regexp_matches(body, '([A-Za-z0-9]*[a-z][A-Z][A-Za-z0-9]*)', 'g') AS m
        ), ''))"""


def _analyzer(letter: str, hidden: str) -> str:
    """The chunks' analyzer: 0008's, then the camel-case words.

    Self-contained, calling no function of ours: pg_restore runs with an empty
    search_path, where a call to another of our functions from its body is not found
    (the generated columns are computed again as the rows are restored).  IMMUTABLE
    and PL/pgSQL for 0008's reasons.
    """
    return rf"""
CREATE OR REPLACE FUNCTION librarian_tsvector(body text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    words tsvector;
BEGIN
    IF body !~ '[{letter}]' THEN
        words := to_tsvector('english', body);
    ELSE
        words := to_tsvector('english', regexp_replace(body, '[{hidden}]+', ' ', 'g'))
            || coalesce((
                SELECT string_agg(format('%L:%s', g.gram, g.pos), ' ')::tsvector
                FROM (
                    SELECT CASE WHEN length(r.run[1]) = 1 THEN r.run[1]
                                ELSE substr(r.run[1], i, 2) END AS gram,
                           row_number() OVER (ORDER BY r.n, i) AS pos
                    FROM regexp_matches(body, '[{letter}]+', 'g') WITH ORDINALITY AS r(run, n),
                         generate_series(1, greatest(length(r.run[1]) - 1, 1)) AS i
                ) g
            ), ''::tsvector);
    END IF;
    IF body ~ '[a-z][A-Z]' THEN
        words := words || {_CAMEL_WORDS};
    END IF;
    RETURN words;
END
$fn$
"""


def upgrade() -> None:
    m0008 = _analyzer_0008()
    # Questions keep 0008's analyzer, under a name of its own.
    op.execute(
        m0008.CREATE_ANALYZER.replace(
            "CREATE FUNCTION librarian_tsvector(", f"CREATE FUNCTION {_QUERY}(", 1
        )
    )
    op.execute(_analyzer(m0008.LETTER, m0008.HIDDEN))
    m0008._set_analyzer("librarian_tsvector(text)")


def downgrade() -> None:
    m0008 = _analyzer_0008()
    op.execute(m0008.CREATE_ANALYZER.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    m0008._set_analyzer("librarian_tsvector(text)")
    op.execute(f"DROP FUNCTION {_QUERY}(text)")
