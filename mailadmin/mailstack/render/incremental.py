"""The incremental render: a release from the one in force plus the domains that changed.

One change at 100,000 mailboxes touches one domain; rendering and hashing every mailbox again
for it is what made a change take seconds. Here a *partial* snapshot (the rows of the changed
domains only, `build_snapshot(..., domains=...)`) is rendered as usual, and each file is then
made from the previous release's text of it:

- files whose entries each belong to one domain (`KEYED_FILES`: the passwd-file, the deny
  lists, the app-password lists and the Postfix maps, one entry per line, keyed
  ``local@domain``, ``@domain`` or ``domain``) keep the previous text with the block of each
  changed domain replaced by that domain's new lines (or removed, or inserted at its place in
  the domain order);
- a Sieve script belongs to the domain of its address: a changed domain's come from the
  partial render, the others are kept;
- every other file (dovecot.conf, main.cf, master.cf, OpenDKIM's tables, the transport map)
  depends on the settings and the DKIM keys alone, which a partial snapshot holds whole, so
  the partial render is that file.

The renderer keeps every keyed file grouped by domain in the snapshot's domain order, so the
result is byte-for-byte the full render of the same database (tests/mailstack/
test_render_incremental.py compares the two after random changes). This module is pure: the
caller reads the previous release (`mailadmin.mailstack.incremental`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

from ...names import domain_of
from .common import RELEASE_PLACEHOLDER, Files, RenderError

#: path -> the character ending an entry's key (passwd-style ":" or a Postfix map's " ").
KEYED_FILES: dict[str, str] = {
    "dovecot/users": ":",
    "dovecot/deny.imap": ":",
    "dovecot/deny.pop3": ":",
    "dovecot/deny.smtp": ":",
    "postfix/vdomains": " ",
    "postfix/vmailbox": " ",
    "postfix/valias": " ",
    "postfix/recipient_access": " ",
    "postfix/sender_login": " ",
    "postfix/sasl_access": " ",
}
KEYED_FOLDERS: dict[str, str] = {"dovecot/app-passwords/": ":"}
SIEVE_FOLDER = "dovecot/sieve/"

#: Below this size a keyed file is regrouped line by line (cheap); above it the changed
#: domains' blocks are found by searching the text.
_SMALL = 1 << 16


def key_separator(rel: str) -> str | None:
    """The key separator of a keyed file, None for any other file."""
    if rel in KEYED_FILES:
        return KEYED_FILES[rel]
    for folder, sep in KEYED_FOLDERS.items():
        if rel.startswith(folder):
            return sep
    return None


def sieve_domain(rel: str) -> str | None:
    """The domain a Sieve script belongs to (``dovecot/sieve/<address>.sieve``)."""
    if rel.startswith(SIEVE_FOLDER) and rel.endswith(".sieve"):
        return domain_of(rel[len(SIEVE_FOLDER):-len(".sieve")]) or None
    return None


def _key_domain(key: str) -> str:
    return domain_of(key)


def _header_end(text: str) -> int:
    """The offset after the header line (every keyed file starts with one comment line)."""
    if not text.startswith("#"):
        raise RenderError("a keyed file lacks its header line")
    end = text.find("\n")
    return len(text) if end < 0 else end + 1


def _line_domain(text: str, start: int, sep: str) -> str:
    stop = text.find(sep, start)
    eol = text.find("\n", start)
    if stop < 0 or (0 <= eol < stop):
        raise RenderError("a keyed file line has no key")
    return _key_domain(text[start:stop])


def _groups(text: str, sep: str) -> tuple[str, dict[str, str]]:
    """(header, {domain: its lines}) of a keyed file."""
    head = _header_end(text)
    blocks: dict[str, list[str]] = {}
    for line in text[head:].splitlines(keepends=True):
        key = line.partition(sep)[0]
        blocks.setdefault(_key_domain(key), []).append(line)
    return text[:head], {d: "".join(lines) for d, lines in blocks.items()}


def _find_block(text: str, domain: str, sep: str, head: int) -> tuple[int, int] | None:
    """[start, end) of `domain`'s lines in a grouped keyed file, None when it has none."""
    start = None
    for needle in (f"@{domain}{sep}", f"\n{domain}{sep}"):
        pos = text.find(needle, head - 1)
        while pos >= 0:
            line_start = text.rfind("\n", 0, pos + (needle[0] == "\n")) + 1
            if _line_domain(text, line_start, sep) == domain:
                start = line_start if start is None else min(start, line_start)
                break
            pos = text.find(needle, pos + 1)
    if start is None:
        return None
    end = start
    while end < len(text) and _line_domain(text, end, sep) == domain:
        eol = text.find("\n", end)
        end = len(text) if eol < 0 else eol + 1
    return start, end


def splice(previous: str, new_blocks: Mapping[str, str], order: Sequence[str],
           sep: str) -> str:
    """`previous` with each domain of `new_blocks` given exactly those lines ("" removes it).

    `order` is every domain of the result in order (a domain being removed may be absent);
    `previous` must be grouped by domain in that order.
    """
    if len(previous) < _SMALL:
        header, blocks = _groups(previous, sep)
        blocks.update(new_blocks)
        return header + "".join(blocks.get(d, "") for d in order)
    head = _header_end(previous)
    text = previous
    position = {d: i for i, d in enumerate(order)}
    # one domain at a time: each edit shifts the offsets after it
    for domain, lines in new_blocks.items():
        found = _find_block(text, domain, sep, head)
        if found is not None:
            start, end = found
        else:
            if not lines:
                continue
            if domain not in position:
                raise RenderError(f"domain {domain} is not in the domain order")
            start = len(text)
            for following in order[position[domain] + 1:]:
                after = _find_block(text, following, sep, head)
                if after is not None:
                    start = after[0]
                    break
            end = start
        text = text[:start] + lines + text[end:]
    return text


@dataclasses.dataclass(frozen=True)
class Merged:
    files: Files
    #: paths whose text is the previous release's, unchanged (apply links them)
    unchanged: frozenset[str]


def merge(partial: Files, previous: Mapping[str, str], rendered: Collection[str],
          order: Sequence[str]) -> Merged:
    """The full release's files from a partial render and the previous release's files.

    `partial` is the render of the partial snapshot of the domains `rendered` (changed ones
    and removed ones); `previous` holds the previous release's files with the same release
    folder placeholder; `order` names every domain of the new release in order.
    """
    changed = frozenset(rendered)
    files: Files = {}
    unchanged = set()
    for rel, text in partial.items():
        sep = key_separator(rel)
        if sep is None:
            if sieve_domain(rel) is None or sieve_domain(rel) in changed:
                files[rel] = text
            continue
        old = previous.get(rel)
        if old is None:
            raise RenderError(f"the previous release lacks {rel}")
        header, blocks = _groups(text, sep)
        if old[:len(header)] != header:
            raise RenderError(f"{rel} changed its header")
        strays = set(blocks) - changed
        if strays:
            raise RenderError(f"{rel} has lines of domains not rendered: {sorted(strays)}")
        new = splice(old, {d: blocks.get(d, "") for d in changed}, order, sep)
        files[rel] = new
        if new == old:
            unchanged.add(rel)
    known = set(order)
    for rel, text in previous.items():
        domain = sieve_domain(rel)
        if rel in files or domain is None:
            continue
        if domain not in changed and domain in known:
            files[rel] = text
            unchanged.add(rel)
    for rel, text in files.items():
        if rel not in unchanged and previous.get(rel) == text:
            unchanged.add(rel)
    # a file naming its release folder (2.3's passwd-file names the Sieve scripts) is written
    # afresh: a link would keep naming the previous release, which is pruned one day
    unchanged = {rel for rel in unchanged if RELEASE_PLACEHOLDER not in files[rel]}
    return Merged(dict(sorted(files.items())), frozenset(unchanged))
