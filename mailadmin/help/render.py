"""Article Markdown to safe HTML, placeholders, plain text for the index, highlighted results.

Pure functions. Markdown goes through markdown-it-py (CommonMark, raw HTML allowed so that an
admin may write a <kbd>), then every byte of HTML through nh3, which keeps only the tags and
attributes below: no script, no style, no event handler, no javascript: URL, whoever wrote it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
    "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "mark", "ol", "p", "pre", "s",
    "samp", "small", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
})
ALLOWED_ATTRIBUTES: Mapping[str, set[str]] = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

#: `{{ name }}` in an article body.
PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*\}\}")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")
#: A word in a search query (letters, digits, underscore in any script).
_WORD = re.compile(r"[^\W_]+")
MAX_QUERY_WORDS = 12
MAX_WORD = 40


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table")


def escape_markdown(text: str) -> str:
    """`text` as literal Markdown: a value from the settings or a mailbox cannot format."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def fill_placeholders(body: str, values: Mapping[str, str]) -> str:
    """Replace known `{{ name }}` with its (Markdown) value; an unknown name stays as written,
    so an author sees the typo in the preview."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


def sanitise(html_text: str) -> str:
    return nh3.clean(
        html_text,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def render_markdown(body: str, values: Mapping[str, str] | None = None) -> Markup:
    """The article as safe HTML; headings start at h2 (the page's h1 is the title)."""
    text = fill_placeholders(body, values or {})
    raw = _markdown().render(text)
    raw = re.sub(r"<(/?)h1>", r"<\1h2>", raw)
    return Markup(sanitise(raw))  # noqa: S704  (sanitised by nh3 just above)


def plain_text(body: str, values: Mapping[str, str] | None = None) -> str:
    """The article as plain text: placeholders filled from `values` (Markdown), or left out
    (for the search index, which must not depend on one server's host names)."""
    return _plain_text(body, tuple(sorted((values or {}).items())))


@lru_cache(maxsize=1024)
def _plain_text(body: str, values: tuple[tuple[str, str], ...]) -> str:
    # Cached: every search renders the snippets of its hits, and the texts rarely change.
    known = dict(values)
    text = PLACEHOLDER.sub(lambda m: known.get(m.group(1), ""), body)
    without_tags = nh3.clean(_markdown().render(text), tags=set())
    return " ".join(html.unescape(without_tags).split())


def query_words(query: str) -> list[str]:
    """The words of a search, lowercase, in order, without repeats; at most a dozen."""
    words: list[str] = []
    for word in _WORD.findall(query.lower()):
        word = word[:MAX_WORD]
        if word not in words:
            words.append(word)
    return words[:MAX_QUERY_WORDS]


def _word_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    # A word matches at the start of a word of the text, so "block" marks "blocked" and
    # "blocks" as the stemming search found them.
    stems = sorted({w if len(w) <= 4 else w[: max(4, len(w) - 2)] for w in words},
                   key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(s) for s in stems) + r")\w*", re.IGNORECASE)


def highlight(text: str, words: Sequence[str]) -> Markup:
    """`text` escaped, with the words of the query wrapped in <mark>."""
    pattern = _word_pattern(words)
    if pattern is None:
        return escape(text)
    out: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(str(escape(text[last:match.start()])))
        out.append(f"<mark>{escape(match.group(0))}</mark>")
        last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))  # noqa: S704  (every piece escaped above)


def snippet(text: str, words: Sequence[str], width: int = 240) -> Markup:
    """About `width` characters of `text` around the first matching word, highlighted."""
    pattern = _word_pattern(words)
    match = pattern.search(text) if pattern else None
    start = 0 if match is None else max(0, match.start() - width // 3)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    piece = highlight(text[start:end], words)
    return (escape("… " if start else "") + piece
            + escape(" …" if end < len(text) else ""))
