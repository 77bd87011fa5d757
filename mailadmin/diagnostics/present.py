"""Present findings to people: the decisive line within an excerpt, the fix for their mail program.

Pure library code (no Flask, no HTML): the panel page and the API turn these plain objects into
markup or JSON themselves, so all escaping stays with the template engine or the JSON encoder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from .catalogue import CLIENTS, Family, Reason
from .catalogue import family as family_entry
from .catalogue import reason as reason_entry
from .classify import Finding, classify
from .parse import MAX_INPUT, parse, to_text

#: How the panel names the mail programs of :data:`CLIENTS`.
CLIENT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "outlook": "Outlook",
        "thunderbird": "Thunderbird",
        "apple_mail": "Apple Mail (Mac)",
        "ios": "iPhone / iPad (iOS Mail)",
        "android": "Android (Gmail app)",
    }
)

#: Lines shown before and after the decisive line(s).
CONTEXT_LINES = 3
#: Characters of one excerpt line shown; longer lines are cut with an ellipsis.
MAX_LINE_CHARS = 400
#: Consecutive input lines one decisive line may span (wrapped SMTP replies, folded headers).
MAX_SPAN = 12
#: Characters of input searched for the decisive line.
MAX_SEARCH = 256_000
# The start of the decisive line that must be found verbatim in an input line.
_ANCHOR = 24

_CONTINUATION_PREFIX = re.compile(r"^[>\s]*(?:[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?)?")


@dataclass(frozen=True)
class ExcerptLine:
    number: int  # 1-based line number within the excerpt's source text
    text: str
    decisive: bool


@dataclass(frozen=True)
class Excerpt:
    """Lines around the decisive line; ``source`` says where they come from.

    ``input``: the text as given (line numbers are the input's); ``decoded``: the decoded
    message text (after MIME and transfer decoding); ``line``: the decisive line could not be
    located, so it is shown on its own. ``lines`` is empty when there is no decisive line.
    """

    source: str
    lines: tuple[ExcerptLine, ...]

    @property
    def found(self) -> bool:
        return any(line.decisive for line in self.lines)


@dataclass(frozen=True)
class Presented:
    """One finding with everything a person needs to act on it."""

    finding: Finding
    family: Family
    client: str | None
    client_label: str | None
    client_fix: str | None
    excerpt: Excerpt
    #: The bounce reason (Sisimai's vocabulary) in plain words.
    reason: Reason | None = None

    @property
    def hardness(self) -> str:
        if self.finding.hard is None:
            return "n/a"
        return "hard" if self.finding.hard else "soft"

    @property
    def confidence_word(self) -> str:
        value = self.finding.confidence
        if value >= 0.8:
            return "high"
        if value >= 0.5:
            return "medium"
        return "low"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form (for the API)."""
        return {
            **self.finding.as_dict(),
            "title": self.family.title,
            "cause": self.family.cause,
            "fix": self.family.fix,
            "client": self.client,
            "client_fix": self.client_fix,
            "reason_cause": self.reason.cause if self.reason else None,
            "reason_fix": self.reason.fix if self.reason else None,
            "excerpt": {
                "source": self.excerpt.source,
                "lines": [
                    {"number": line.number, "text": line.text, "decisive": line.decisive}
                    for line in self.excerpt.lines
                ],
            },
        }


def _normal(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    text = text.rstrip("\r\n").expandtabs(4).rstrip()
    return text if len(text) <= MAX_LINE_CHARS else f"{text[:MAX_LINE_CHARS]}…"


def locate(lines: Sequence[str], decisive: str) -> tuple[int, int] | None:
    """Return ``(start, end)`` (end exclusive) of the input lines that make up ``decisive``.

    ``decisive`` is a finding's ``line``: whitespace-collapsed, possibly joined from a reply
    wrapped over several lines ("550-5.1.1 ..." continuations) or a folded DSN field, and cut
    at 300 characters. The best match covers the most of it; the first such match wins.
    """
    wanted = _normal(decisive)
    if not wanted:
        return None
    anchor = wanted[:_ANCHOR]
    best: tuple[int, int, int] | None = None  # (covered, start, end)
    for index, raw in enumerate(lines):
        line = _normal(raw)
        at = line.find(anchor)
        if at < 0:
            continue
        tail = line[at:]
        if not (wanted.startswith(tail) or tail.startswith(wanted)):
            continue
        cursor = min(len(tail), len(wanted))
        end = index + 1
        while cursor < len(wanted) and end < len(lines) and end - index < MAX_SPAN:
            piece = _normal(_CONTINUATION_PREFIX.sub("", lines[end]))
            found = wanted.find(piece, cursor) if piece else -1
            if found < 0 or found > cursor + 1:
                break
            cursor = found + len(piece)
            end += 1
        if best is None or cursor > best[0]:
            best = (cursor, index, end)
        if cursor >= len(wanted):
            break
    return None if best is None else (best[1], best[2])


def excerpt(text: str, decisive: str, context: int = CONTEXT_LINES, source: str = "input"
            ) -> Excerpt | None:
    """The decisive line(s) of ``text`` with ``context`` lines around, or None if not there."""
    lines = text[:MAX_SEARCH].split("\n")
    span = locate(lines, decisive)
    if span is None:
        return None
    start, end = span
    first, last = max(0, start - context), min(len(lines), end + context)
    # Trim blank lines at the edges of the excerpt: they only add height.
    while first < start and not lines[first].strip():
        first += 1
    while last > end and not lines[last - 1].strip():
        last -= 1
    return Excerpt(
        source,
        tuple(
            ExcerptLine(number + 1, _clip(lines[number]), start <= number < end)
            for number in range(first, last)
        ),
    )


def excerpt_for(data: str | bytes, decisive: str, context: int = CONTEXT_LINES) -> Excerpt:
    """Find the decisive line in the input as given, else in its decoded text, else alone."""
    if not decisive.strip():
        return Excerpt("line", ())
    raw = to_text(data[:MAX_INPUT])
    found = excerpt(raw, decisive, context, "input")
    if found is None:
        decoded = parse(data).text
        if decoded != raw:
            found = excerpt(decoded, decisive, context, "decoded")
    return found or Excerpt("line", (ExcerptLine(1, _clip(decisive), True),))


def client_fix(entry: Family, client: str | None) -> str | None:
    """The exact setting to change in ``client`` for this family, when the catalogue has one."""
    if client is None:
        return None
    return entry.clients.get(client)


def present(data: str | bytes, findings: Sequence[Finding], client: str | None = None,
            context: int = CONTEXT_LINES) -> list[Presented]:
    """Attach catalogue text, the client's settings and an excerpt to each finding."""
    if client not in CLIENTS:
        client = None
    out: list[Presented] = []
    for finding in findings:
        entry = family_entry(finding.family)
        out.append(
            Presented(
                finding=finding,
                family=entry,
                client=client,
                client_label=CLIENT_LABELS.get(client) if client else None,
                client_fix=client_fix(entry, client),
                excerpt=excerpt_for(data, finding.line, context),
                reason=reason_entry(finding.reason),
            )
        )
    return out


def diagnose(data: str | bytes, client: str | None = None) -> list[Presented]:
    """Classify ``data`` and present the findings (empty when nothing is recognised)."""
    return present(data, classify(data), client)
