"""Web pages (.html, .htm, and pages saved with their assets) and EPUB chapters.

Parsed with selectolax (the Lexbor HTML5 engine, in C): the same tree a browser builds,
fast, and no recursion in Python however deep the nesting.  Boilerplate is removed
before reading: scripts, styles, navigation, headers and footers of the site, forms,
hidden elements and blocks whose class or id names them as menus, sidebars, cookie
banners and the like; if the page marks its main content (``<main>``, ``role=main``, a
single ``<article>``) only that is read.  Locations are heading paths: "section Duck >
Taxonomy".  Data tables become rows; tables used for layout are read as text.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from bot.ingest.document import Extracted, clean_title, title_from_filename
from bot.ingest.filetypes import FileKind, decode_text
from bot.ingest.formats.common import Sections, broken, extracted, has_text, inline

__all__ = ["decode_html", "extract_html", "read_html_into"]

_DROPPED_TAGS = [
    *("script", "style", "noscript", "template", "svg", "math", "canvas", "iframe"),
    *("object", "embed", "nav", "header", "footer", "aside", "form", "button"),
    *("select", "input", "textarea", "link", "meta", "dialog"),
]
_DROPPED_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu"}
# Words in class or id that mark page furniture rather than content.
_BOILERPLATE_WORDS = {
    *("nav", "navbar", "navbox", "navigation", "menu", "sidebar", "breadcrumb"),
    *("breadcrumbs", "footer", "cookie", "cookies", "share", "sharing", "social"),
    *("advert", "advertisement", "ads", "banner", "skip", "toc", "editsection"),
    *("related", "newsletter", "subscribe", "noprint", "mw-jump-link", "catlinks"),
}
_WORD_SPLIT_RE = re.compile(r"[\s_-]+")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that end a run of inline text.
_BLOCKS = {
    *("p", "div", "section", "article", "main", "li", "dd", "dt", "blockquote", "pre"),
    *("figcaption", "caption", "address", "ul", "ol", "dl", "br", "hr", "tr", "td"),
    *("th", "figure", "details", "summary", "center", "body", "html", "tbody", "thead"),
}
# A table holding these is laid out with, not a table of data; nor is one whose cell holds
# more than one paragraph.  A cell's single paragraph is still a value: pages exported
# from a word processor (a filing's cover: "Trading symbol" over "GLXZ") wrap each cell
# in a <p>, and read as text its rows ran together as one line of words.
_LAYOUT_INSIDE = "table, ul, ol, blockquote, h1, h2, h3, h4, h5, h6"
_CELL_BLOCKS = "p, div"
# The HTML5 tree builder checks "in scope" by walking its stack of open elements, so
# parsing time grows with the square of the nesting depth (Lexbor: 0.07 s at 5,000
# levels, 4.8 s at 20,000).  Real pages nest a few dozen levels; deeper is refused.
MAX_NESTING = 4000
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")
# Elements that never have content, or whose end tag may be left out (the parser closes
# them itself): they do not deepen the tree for long.
_NOT_NESTING = {
    *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"),
    *("source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option"),
    *("optgroup", "tbody", "thead", "tfoot", "colgroup", "rb", "rt", "rp", "caption"),
}
_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def decode_html(data: bytes, filename: str) -> str:
    """The page's text: a BOM or valid UTF-8 first, then the declared charset.

    Pages often declare a charset their bytes do not use (a template's gb2312 over
    UTF-8 text); bytes that are valid UTF-8 are almost never meant as anything else.
    """
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return decode_text(data, filename)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = _CHARSET_RE.search(data[:4096])
    if match:
        try:
            return data.decode(codecs.lookup(match.group(1).decode("ascii")).name, "replace")
        except LookupError:
            pass
    return decode_text(data, filename)


def nesting_depth(html: str) -> int:
    """An estimate of how deep the page's elements nest (open minus closed tags)."""
    depth = deepest = 0
    for match in _TAG_RE.finditer(html):
        closing, tag, self_closing = match.groups()
        if self_closing or tag.lower() in _NOT_NESTING:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _is_boilerplate(node: Any) -> bool:
    attrs = node.attributes
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if (attrs.get("role") or "").lower() in _DROPPED_ROLES:
        return True
    style = (attrs.get("style") or "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
    return any(word in _BOILERPLATE_WORDS for word in _WORD_SPLIT_RE.split(names) if word)


def _content_root(tree: Any) -> Any:
    mains = tree.css("main, [role=main]")
    if len(mains) == 1:
        return mains[0]
    articles = tree.css("article")
    if len(articles) == 1:
        return articles[0]
    return tree.body


def _words(node: Any) -> str:
    """The text of ``node`` as a reader sees it: inline elements joined as written
    ("(<span>702</span>) 939-3254" is "(702) 939-3254", where a space between every
    text node gave "( 702 ) 939-3254"), blocks and line breaks set apart by a space."""
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(node, True)]  # without recursion, as read_html_into
    while stack:
        current, entering = stack.pop()
        if current.tag == "-text":
            out.append(current.text_content or "")
            continue
        if current.tag in _BLOCKS:
            out.append(" ")
        if entering and current.tag != "-comment":
            stack.append((current, False))
            stack.extend((c, True) for c in reversed(list(current.iter(include_text=True))))
    return inline("".join(out))


def _table_rows(table: Any) -> list[list[str]]:
    rows = []
    for row in table.css("tr"):
        cells = [_words(cell) for cell in _children(row)]
        rows.append(cells)
    return rows


def _laid_out(table: Any) -> bool:
    """Whether ``table`` lays a page out (read as text) rather than holds data (rows)."""
    # (A node's own selector matches itself: only what is inside counts.)
    if any(inner.mem_id != table.mem_id for inner in table.css(_LAYOUT_INSIDE)):
        return True
    return any(
        sum(has_text(block.text(deep=True)) for block in cell.css(_CELL_BLOCKS)) > 1
        for cell in table.css("td, th")
    )


def _children(node: Any) -> list[Any]:
    out, child = [], node.child
    while child is not None:
        if child.tag in ("td", "th"):
            out.append(child)
        child = child.next
    return out


def read_html_into(html: str, sections: Sections) -> str | None:
    """Read a page's content into ``sections``; return the page's own title, if any."""
    from selectolax.lexbor import LexborHTMLParser

    if nesting_depth(html) > MAX_NESTING:
        raise RecursionError  # the reader's caller refuses it as nested too deeply
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = inline(title_node.text()) if title_node is not None else None
    og_title = tree.css_first('meta[property="og:title"]')
    if og_title is not None and og_title.attributes.get("content"):
        title = inline(og_title.attributes["content"])
    root = _content_root(tree)
    if root is None:
        return title
    # A site's <header> and <footer> are furniture; inside the marked main content they
    # hold the article's own title and byline.
    inside_main = root.tag != "body"
    root.strip_tags([t for t in _DROPPED_TAGS if not (inside_main and t == "header")])
    for node in list(root.traverse()):
        if node.tag not in ("-text", "-comment") and node is not root and _is_boilerplate(node):
            node.decompose()

    run: list[str] = []

    def flush() -> None:
        text = inline("".join(run))
        run.clear()
        if text:
            sections.paragraph(text)

    # Depth-first without recursion: a stack of (node, entering) pairs.
    stack: list[tuple[Any, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        tag = node.tag
        if not entering:
            flush()
            continue
        if tag == "-text":
            run.append(node.text_content or "")
            continue
        if tag == "-comment":
            continue
        if tag in _HEADINGS:
            flush()
            sections.heading(_HEADINGS[tag], _words(node))
            continue
        if tag == "table" and not _laid_out(node):
            flush()
            sections.table(_table_rows(node))
            continue
        if tag == "pre":
            flush()
            for line in (node.text(deep=True) or "").splitlines():
                sections.paragraph(line.rstrip())
            continue
        if tag in ("img",) and node.attributes.get("alt"):
            run.append(f" {node.attributes['alt']} ")
            continue
        block = tag in _BLOCKS
        if block:
            flush()
            stack.append((node, False))
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, True) for c in reversed(children))
    flush()
    return title


def extract_html(data: bytes, filename: str) -> Extracted:
    """Read a web page: its main content, sections by heading, tables as rows."""
    sections = Sections()
    try:
        title = read_html_into(decode_html(data, filename), sections)
    except RecursionError as exc:
        raise broken(filename, "a web page", exc) from None
    pages = sections.pages()
    title = clean_title(title) if title and has_text(title) else None
    return extracted(pages, FileKind.HTML, title or title_from_filename(filename), filename)
