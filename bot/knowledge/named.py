"""Questions that name a document: "What is X about?", "Summarize X", "The gist of X",
"Who wrote X?", "In X, what ...", "What is the title of report.pdf?".

Such a question is answered from that document: an "about" or "summarize" question
from its opening chunks (title, abstract, first headings), any other from its own
chunks.  A document is named by its file name (with or without the extension, any
spacing of ``_``/``-``) or by its title (the first line of its first chunk), matched
closely (difflib's ratio, or every word of the name present).  When the question names
a file that is not in the workspace, the reply says so and lists the closest names.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from bot.ingest.filetypes import IMAGE_KINDS, KINDS, FileKind
from bot.knowledge.question import without_politeness

# "what is X about", "summarize X", "give me a summary of X", "what does X say/cover",
# "what is the main idea of X", "the gist of X", "the key points of X", "tl;dr of X",
# and the Chinese "X 讲了什么" / "总结 X" / "概括 X" / "X 的要点".
_GIST = (
    r"(?:main|key|central|core)\s+(?:idea|ideas|point|points|message|argument|takeaways?"
    r"|findings|contributions?)|gist|key\s+takeaways?|takeaways?|tl;?dr|summary|overview"
)
_ABOUT = [
    re.compile(r"^\s*what(?:'s| is| are)\s+(?P<x>.+?)\s+about\s*\??\s*$", re.I),
    re.compile(
        r"^\s*(?:summari[sz]e|sum up|give (?:me )?(?:a |an )?(?:summary|overview) of"
        r"|(?:a |an )?(?:summary|overview) of)\s+(?P<x>.+?)\s*[.?!]?\s*$",
        re.I,
    ),
    re.compile(r"^\s*what does\s+(?P<x>.+?)\s+(?:say|cover|describe|discuss)\s*\??\s*$", re.I),
    # "What is the main idea of X?", "What's the gist of X?", "Give me the key points of
    # X", "tl;dr of X": what a user asks for instead of "summarize" (seen by hand: "What
    # is the main idea of AutoGen?" was "not found": no document says "idea").
    re.compile(
        rf"^\s*(?:what(?:'s| is| are)|give (?:me )?|list|tell me)?\s*(?:the |a |an )?"
        rf"(?:{_GIST})\s+(?:of|for|in)\s+(?P<x>.+?)\s*[.?!]?\s*$",
        re.I,
    ),
    # "Who is listed in X?", "What is included in X?": what X holds, from its opening.
    re.compile(
        r"^\s*(?:who|what)(?:'s| is| are)\s+(?:listed|included|mentioned|named|shown"
        r"|contained)\s+(?:in|on)\s+(?P<x>.+?)\s*\??\s*$",
        re.I,
    ),
    # "What is on page 3 of X?", "What's in X?"
    re.compile(r"^\s*what(?:'s| is)\s+(?:on|in)\s+(?P<x>.+?)\s*\??\s*$", re.I),
    re.compile(r"^\s*(?:总结|概括|介绍)(?:一下)?\s*(?P<x>.+?)\s*[。？?]?\s*$"),
    re.compile(
        r"^\s*(?P<x>.+?)\s*(?:讲了什么|是关于什么的|的主要内容是什么|的要点是什么|的主要观点是什么"
        r"|的核心思想是什么|(?:里|上|中)?(?:写了|说了)什么|(?:里|上|中)有什么)\s*[。？?]?\s*$"
    ),
]
# "What is the title of X?", "Who are the authors of X?", "Who wrote X?", "X 的作者是谁":
# what a document's header says (title, names), not its abstract.  Seen by hand in
# session 14: "What is the title of acl_N18-3011.pdf?" was "not found" (no sentence
# says "title"), and "Who are the authors of the SPECTER paper?" quoted sentences about
# authors as an input field.
_HEADER = [
    re.compile(
        r"^\s*(?:what(?:'s| is| are)\s+|who(?:'s| is| are| were)\s+|give (?:me )?|tell me\s+)?"
        r"(?:the\s+)?(?:full\s+)?(?:title|authors?|author list|writers?)\s+(?:of|for)\s+"
        r"(?P<x>.+?)\s*[.?!]?\s*$",
        re.I,
    ),
    re.compile(r"^\s*who\s+(?:wrote|authored|published)\s+(?P<x>.+?)\s*[.?!]?\s*$", re.I),
    # Where and when a document appeared: its header says ("Proceedings of NAACL-HLT
    # 2018", "Thursday, August 6, 2020"); its body never does.  Seen on the calibrate
    # split: "At which conference was "Construction of the Literature Graph in Semantic
    # Scholar" published?" was "not found", "conference" being in no document.
    re.compile(
        r"^\s*(?:(?:at|in|on)\s+)?(?:which|what)\s+(?:conference|journal|venue|proceedings|"
        r"workshop|magazine|periodical)\s+(?:was|were|is|are|did)\s+(?P<x>.+?)\s+"
        r"(?:published|presented|accepted|printed|appear|appeared)(?:\s+(?:in|at|on))?"
        r"\s*[.?!]?\s*$",
        re.I,
    ),
    re.compile(
        r"^\s*(?:when|where|in what year|in which year|on what date)\s+(?:was|were|is|are)\s+"
        r"(?P<x>.+?)\s+(?:published|written|released|issued|presented|dated)\s*[.?!]?\s*$",
        re.I,
    ),
    re.compile(
        r"^\s*(?P<x>.+?)\s*(?:是)?(?:什么时候|哪一年|何时|在哪里|在哪儿)(?:发表|出版|发布|刊登)的?"
        r"\s*[。？?]?\s*$"
    ),
    re.compile(
        r"^\s*(?P<x>.+?)\s*(?:发表|刊登|发布)(?:在|于)(?:哪个|哪一个|什么)(?:会议|期刊|杂志)上?"
        r"\s*[。？?]?\s*$"
    ),
    re.compile(r"^\s*(?P<x>.+?)\s*的(?:标题|题目|作者)是(?:什么|谁)\s*[。？?]?\s*$"),
    re.compile(r"^\s*(?:谁写了|谁是)(?P<x>.+?)(?:的作者)?\s*[。？?]?\s*$"),
]
# "In X, what ..." / "According to X, ..." / "In X: ..." / "On page 3 of X, ..."
_WITHIN = re.compile(
    r"^\s*(?:in|on|according to|from)\s+(?P<x>[^,:?]{3,120}?)\s*[,:]\s*(?P<q>.+)$", re.I
)
# A place in a document: "page 3 of X", "slide 2 in X", "X, page 3", "X 第3页", or the
# place alone ("page 3": of the document shared last).  Pages, slides and sheets are
# what the extractor numbers (a chunk's page_start..page_end).
_UNITS = {"page": "page", "p.": "page", "pg": "page", "pg.": "page", "slide": "slide"}
_UNITS |= {"sheet": "sheet", "页": "page", "张幻灯片": "slide", "张": "page"}
_UNIT = r"(?P<unit>page|p\.|pg\.?|slide|sheet)"
_PLACES = [
    re.compile(
        rf"^\s*(?:the\s+)?{_UNIT}\s*(?P<n>\d{{1,5}})(?:\s+(?:of|in|from)\s+(?P<x>.+))?$", re.I
    ),
    re.compile(rf"^\s*(?P<x>.+?)\s*,?\s+{_UNIT}\s*(?P<n>\d{{1,5}})\s*$", re.I),
    re.compile(r"^\s*(?P<x>.*?)\s*的?第\s*(?P<n>\d{1,5})\s*(?P<unit>页|张幻灯片|张)\s*$"),
]
# A file name as written in a question: a name with the extension of a kind of file
# Librarian reads (``KINDS``, the one declaration of them).
_EXTENSIONS = sorted({ext.lstrip(".") for spec in KINDS.values() for ext in spec.extensions})
_FILE_NAME = re.compile(rf"[\w\-.]+\.(?:{'|'.join(_EXTENSIONS)})\b", re.I)

# The nouns a question calls a document by, and the kinds of file each means (None: a
# file of any kind): "this deck" is the presentation shared last, though an image came
# after it; "the Crazy Ones paper" is "the Crazy Ones".
_SLIDES = frozenset({FileKind.PPTX, FileKind.ODP})
_SHEETS = frozenset({FileKind.XLSX, FileKind.ODS, FileKind.CSV, FileKind.TSV})
DOCUMENT_NOUNS: dict[str, frozenset[FileKind] | None] = {
    **dict.fromkeys(("document", "doc", "file", "paper", "report", "attachment"), None),
    **dict.fromkeys(("upload", "article", "book", "diagram", "chart"), None),
    **dict.fromkeys(("presentation", "deck", "slides"), _SLIDES),
    **dict.fromkeys(("spreadsheet", "workbook", "sheet"), _SHEETS),
    **dict.fromkeys(("image", "picture", "photo", "scan", "screenshot"), IMAGE_KINDS),
    "pdf": frozenset({FileKind.PDF}),
    **dict.fromkeys(("csv", "tsv"), frozenset({FileKind.CSV, FileKind.TSV})),
    **dict.fromkeys(("excel", "xlsx"), frozenset({FileKind.XLSX})),
    **dict.fromkeys(("docx", "word document"), frozenset({FileKind.DOCX, FileKind.ODT})),
    **dict.fromkeys(("pptx", "powerpoint"), frozenset({FileKind.PPTX})),
    **dict.fromkeys(("epub", "ebook", "e-book"), frozenset({FileKind.EPUB})),
    **dict.fromkeys(("web page", "webpage", "html"), frozenset({FileKind.HTML})),
    **dict.fromkeys(("文件", "文档", "文章", "报告", "论文", "资料", "书"), None),
    "幻灯片": _SLIDES,
    "表格": _SHEETS,
    **dict.fromkeys(("图", "图片", "照片", "截图", "扫描件"), IMAGE_KINDS),
}
_EN_NOUNS = "|".join(sorted((n for n in DOCUMENT_NOUNS if n.isascii()), key=len, reverse=True))
_ZH_NOUNS = "|".join(sorted((n for n in DOCUMENT_NOUNS if not n.isascii()), key=len, reverse=True))
# "What is this about?", "summarize it", "这份文件讲了什么？": in a chat, the document
# just shared, the last of the list (``Store.document_openings`` puts the channel's last).
# "this one" and "this page" (a web page) name it too.
_THIS = re.compile(
    rf"^(?:it|this|that|(?:this|that|the) (?P<noun>one|page|{_EN_NOUNS})(?: file| document)?)$"
    rf"|^(?:它|这|该|这个|这份|这篇|这本|这张|这幅)(?P<zh>{_ZH_NOUNS})?$"
    # "图片里写了什么？": Chinese writes "the image" without an article.
    rf"|^(?P<bare>{_ZH_NOUNS})$",
    re.I,
)
# What a name is written with and is not part of: "the SPECTER paper" is "SPECTER", and
# "the image DA-1p.png" is "DA-1p.png".
_DECOR = re.compile(
    rf"^(?:(?:the|a|an)\s+)?(?:(?:{_EN_NOUNS})\s+(?=\S))?|\s+(?:{_EN_NOUNS})$"
    rf"|(?<=\S)\s*(?:这篇|这份|这个)?(?:{_ZH_NOUNS})$",
    re.I,
)


# "Who is listed in the CSV file?", "What does the spreadsheet say about Q3?": a kind of
# file named inside a question (seen by hand in session 14: "CSV" was searched for, and
# the question was "not found").  It names the one document of that kind, or, said with
# "this" or "that", the one shared last.
_KIND_NOUNS = "|".join(
    sorted((re.escape(n) for n, k in DOCUMENT_NOUNS.items() if k and n.isascii()), key=len)[::-1]
)
_KIND_IN = re.compile(
    rf"\s*\b(?:in|from|of|on|inside|within)\s+(?P<det>the|this|that|my|our)\s+"
    rf"(?P<noun>{_KIND_NOUNS})(?:\s+(?:file|document|sheet))?\b",
    re.I,
)


def _of_kind(noun: str, documents: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
    """The documents whose file is of the kind ``noun`` says, in shared order."""
    kinds = DOCUMENT_NOUNS.get(noun.lower()) or frozenset()
    extensions = tuple(ext for kind in kinds for ext in KINDS[kind].extensions)
    return [(i, n) for i, n, _ in documents if extensions and n.lower().endswith(extensions)]


def _latest_of(noun: str | None, documents: list[tuple[int, str, str]]) -> tuple[int, str]:
    """The last of ``documents`` (the one "this" names) of the kind ``noun`` says, if
    any is; else the last."""
    kinds = DOCUMENT_NOUNS.get((noun or "").lower())
    if kinds:
        extensions = tuple(ext for kind in kinds for ext in KINDS[kind].extensions)
        for doc_id, name, _ in reversed(documents):
            if name.lower().endswith(extensions):
                return doc_id, name
    doc_id, name, _ = documents[-1]
    return doc_id, name


MATCH_RATIO = 0.8


@dataclass(frozen=True)
class Named:
    """What a question says about a document."""

    document_id: int | None  # the document it names, if any matched
    document: str | None  # its file name
    about: bool  # "what is it about" / "summarize it": answer from its opening
    asked_for: str | None = None  # the name as written, when no document matched
    closest: list[str] = field(default_factory=list)  # names to suggest then
    # "In X, what ...": the question proper ("what ..."), without the name that only
    # says where to look; None for other shapes.
    rest: str | None = None
    # "page 3 of X": the page (slide, sheet) asked for, and what the asker called it.
    page: int | None = None
    unit: str = "page"
    # "What is the title of X?", "Who wrote X?": from its opening, header first (with
    # ``about``), not from its abstract.
    header: bool = False
    # Named by a bare "it", "this" or "that": the file shared last, unless the
    # conversation was about another since (the answerer decides, from its history).
    pronoun: bool = False


def _place(asked: str) -> tuple[str, int, str] | None:
    """("X", 3, "page") for "page 3 of X" (X "this" when the place is alone)."""
    for pattern in _PLACES:
        m = pattern.match(asked)
        if m:
            unit = _UNITS.get(m.group("unit").lower(), "page")
            return (m.group("x") or "this").strip() or "this", int(m.group("n")), unit
    return None


def _norm(name: str) -> str:
    name = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", name.strip().strip("\"'`*_"))
    return " ".join(w for w in re.split(r"[\W_]+", name.lower()) if w)


def _title(opening: str) -> str:
    for line in opening.splitlines():
        if len(line.strip()) >= 4:
            return line.strip()[:150]
    return ""


def _score(asked: str, file_name: str, opening: str) -> float:
    want = _norm(_DECOR.sub("", asked.strip()))
    if not want:
        return 0.0
    best = 0.0
    # The file name and the title line compare whole; the opening (a paper's header:
    # venue, then title) holds the name's words somewhere.
    for candidate, words_of in (
        (_norm(file_name), _norm(file_name)),
        (_norm(_title(opening)), _norm(opening)),
    ):
        if not candidate:
            continue
        if want == candidate:
            return 1.0
        ratio = difflib.SequenceMatcher(None, want, candidate).ratio()
        words = want.split()
        # Every word of the name in the candidate ("the specter paper" -> "SPECTER: ...").
        if words and all(w in words_of.split() for w in words) and len(want) >= 4:
            ratio = max(ratio, 0.9 if len(words) > 1 or len(want) >= 6 else 0.8)
        best = max(best, ratio)
    return best


def _ranked(asked: str, documents: list[tuple[int, str, str]]) -> list[tuple[float, int, str]]:
    """(score, id, file name) of each document for the name ``asked``, best first.

    Among names that match alike, the file whose name also holds the noun the asker
    called it by ("the AutoGen paper": markitdown_autogen-paper.docx, not
    markitdown_autogen-blog.html; seen by hand in session 22, where the blog was taken
    for being first in alphabetical order), then the file whose title names it too."""
    want = _norm(_DECOR.sub("", asked.strip())).split()
    called = set(_norm(asked).split()) - set(want) - {"the", "a", "an"}
    # Then the one whose title names it too ("What is AutoGen about?": the paper titled
    # "AutoGen: Enabling ...", not the blog post titled "Does Model and Inference ...").
    ties = {
        doc_id: (
            not called & set(_norm(name).split()),
            not (want and set(want) <= set(_norm(_title(opening)).split())),
        )
        for doc_id, name, opening in documents
    }
    return sorted(
        ((_score(asked, name, opening), doc_id, name) for doc_id, name, opening in documents),
        key=lambda t: (-t[0], *ties[t[1]], t[2]),
    )


def might_name_document(question: str) -> bool:
    """Cheap test first: does the question have the shape of one naming a document?"""
    question = without_politeness(question)
    return bool(
        any(p.match(question) for p in (*_ABOUT, *_HEADER))
        or _WITHIN.match(question)
        or _FILE_NAME.search(question)
        or _KIND_IN.search(question)
    )


def find_named(question: str, documents: list[tuple[int, str, str]]) -> Named | None:
    """The document the question names, or why none matched; None when it names none.

    ``documents``: (id, file name, opening text) of the workspace's ready documents, in
    the order they were indexed, the channel's own last: "this", "it" or "this
    document" names the last (a bare pronoun is marked ``pronoun``: in a conversation it
    may be the document the latest answer quoted, ``Answerer._named``).
    """
    asked: str | None = None
    rest: str | None = None
    about = header = False
    question = without_politeness(question)
    for pattern in (*_ABOUT, *_HEADER):
        m = pattern.match(question)
        if m:
            asked, about, header = m.group("x"), True, pattern in _HEADER
            break
    if asked is None:
        m = _WITHIN.match(question)
        if m:
            asked, rest = m.group("x"), m.group("q")
    file_like = _FILE_NAME.search(question)
    if asked is None and file_like:
        asked = file_like.group(0)
        # "How many pages does report.pdf have?": the name says where to look, the rest
        # what to find (weighed alone: the name's words are in no sentence of the file).
        rest = " ".join(question.replace(asked, " ").split())
    if asked is None:
        kind = _KIND_IN.search(question)
        if kind is None:
            return None
        found = _of_kind(kind.group("noun"), documents)
        if not found or (len(found) > 1 and kind.group("det").lower() not in ("this", "that")):
            return None  # none of that kind, or several: a plain question
        doc_id, name = found[-1]
        rest = " ".join((question[: kind.start()] + question[kind.end() :]).split())
        return Named(doc_id, name, False, rest=rest)
    page: int | None = None
    unit = "page"
    placed = _place(asked.strip().rstrip(".?!。？"))
    if placed is not None:
        asked, page, unit = placed
    this = _THIS.match(asked.strip().rstrip(".?!。？").strip())
    if this and documents:
        noun = this.group("noun") or this.group("zh") or this.group("bare")
        doc_id, name = _latest_of(noun, documents)
        bare = noun is None or noun.lower() == "one"
        return Named(
            doc_id, name, about, rest=rest, page=page, unit=unit, header=header, pronoun=bare
        )
    scored = _ranked(asked, documents)
    if file_like and (not scored or scored[0][0] < MATCH_RATIO):
        # The file name alone, as a file's distinct part: "DA-1p.png" is
        # "unstructured_DA-1p.png" (seen by hand: "What is in the image DA-1p.png?" was
        # told there is no such document, and given that very name as the closest).
        scored = _ranked(file_like.group(0), documents)
    if scored and scored[0][0] >= MATCH_RATIO:
        _, doc_id, name = scored[0]
        return Named(doc_id, name, about, rest=rest, page=page, unit=unit, header=header)
    if _FILE_NAME.search(asked) or file_like:
        # It names a document, and none is close: say so, with the nearest names.
        written = file_like.group(0) if file_like else asked.strip()
        return Named(None, None, about, written, [n for _, _, n in scored[:3]])
    # "In 2015, what ...", "What is the warranty about?": no document named; a plain question.
    return None
