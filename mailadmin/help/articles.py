"""The articles shipped with mailadmin: Markdown files with TOML front matter.

Each file in `mailadmin/help/articles/` reads::

    +++
    slug = "pop-vs-imap"
    title = "POP3 or IMAP: which one to choose"
    summary = "One sentence shown in lists and search results."
    topic = "Getting started"
    audience = "public"           # public, mailbox, customer or reseller
    tags = ["pop", "imap"]        # words people search with
    related = ["outlook-setup"]   # slugs
    families = ["mailbox_locked"] # diagnosis families this article explains
    +++
    The body, in Markdown, with {{ placeholders }} (see `mailadmin.help.render`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from ..models import AUDIENCES

#: A slug: lowercase words joined by single hyphens.
SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_SLUG = 80
_FRONT_MATTER = re.compile(r"\A\+\+\+\n(.*?)\n\+\+\+\n(.*)\Z", re.DOTALL)


class ArticleFileError(ValueError):
    """A shipped article file is malformed (a packaging mistake, caught by the tests)."""


@dataclass(frozen=True)
class ShippedArticle:
    slug: str
    title: str
    summary: str
    topic: str
    audience: str
    tags: tuple[str, ...]
    related: tuple[str, ...]
    families: tuple[str, ...]
    body: str

    @property
    def content_hash(self) -> str:
        """Changes whenever anything a reader sees of the article changes."""
        parts = (self.title, self.summary, self.topic, self.audience, " ".join(self.tags),
                 " ".join(self.related), " ".join(self.families), self.body)
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _strings(value: object, name: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArticleFileError(f"{name}: {field} must be a list of strings")
    return tuple(value)


def parse_article(text: str, name: str = "<article>") -> ShippedArticle:
    """One article file. Raises ArticleFileError naming what is wrong."""
    match = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if match is None:
        raise ArticleFileError(f"{name}: no +++ front matter")
    try:
        meta = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError as exc:
        raise ArticleFileError(f"{name}: {exc}") from None
    for key in ("slug", "title", "summary", "topic", "audience"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise ArticleFileError(f"{name}: {key} is missing")
    slug = meta["slug"]
    if not SLUG_PATTERN.fullmatch(slug) or len(slug) > MAX_SLUG:
        raise ArticleFileError(f"{name}: bad slug {slug!r}")
    if meta["audience"] not in AUDIENCES:
        raise ArticleFileError(f"{name}: audience must be one of {', '.join(AUDIENCES)}")
    return ShippedArticle(
        slug=slug,
        title=meta["title"].strip(),
        summary=meta["summary"].strip(),
        topic=meta["topic"].strip(),
        audience=meta["audience"],
        tags=_strings(meta.get("tags", []), name, "tags"),
        related=_strings(meta.get("related", []), name, "related"),
        families=_strings(meta.get("families", []), name, "families"),
        body=match.group(2).strip() + "\n",
    )


@cache
def shipped_articles() -> Mapping[str, ShippedArticle]:
    """Every shipped article by slug, read once from the package."""
    folder = resources.files(__package__).joinpath("articles")
    found: dict[str, ShippedArticle] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".md"):
            continue
        article = parse_article(entry.read_text(encoding="utf-8"), entry.name)
        if article.slug in found:
            raise ArticleFileError(f"{entry.name}: slug {article.slug!r} used twice")
        found[article.slug] = article
    return MappingProxyType(found)


@cache
def family_articles() -> Mapping[str, str]:
    """Diagnosis family -> the slug of the shipped article that explains it."""
    mapping: dict[str, str] = {}
    for article in shipped_articles().values():
        for family in article.families:
            mapping.setdefault(family, article.slug)
    return MappingProxyType(mapping)


#: When no article names a family (a family added to the catalogue later), the diagnosis
#: page still links somewhere useful: the article about reading a diagnosis.
FALLBACK_SLUG = "reading-a-diagnosis"


def slug_for_family(family: str) -> str:
    return family_articles().get(family, FALLBACK_SLUG)
