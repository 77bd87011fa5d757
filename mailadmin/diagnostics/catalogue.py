"""Load the error catalogue (``catalogue.toml``) into typed, read-only objects."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

#: Mail programs the catalogue gives settings for, in the order the panel shows them.
CLIENTS: tuple[str, ...] = ("outlook", "thunderbird", "apple_mail", "ios", "android")


@dataclass(frozen=True)
class Family:
    """A diagnosis family: what went wrong and what to change, in plain words."""

    name: str
    title: str
    cause: str
    fix: str
    client_side: bool
    confirm: tuple[str, ...]
    rule_out: tuple[str, ...]
    clients: Mapping[str, str]


@dataclass(frozen=True)
class Reason:
    """One bounce reason (Sisimai's vocabulary) in plain words."""

    name: str
    cause: str
    fix: str


@dataclass(frozen=True)
class Rule:
    """Phrasings that identify one cause, with the family and Sisimai reason they imply.

    Every phrase has an id of its own (``<rule id>:<n>``, n counted from 1 in file
    order) so that a benchmark can switch single phrases off and measure how the
    classifier does without them (see :meth:`Catalogue.without`).
    """

    id: str
    family: str
    reason: str
    #: Case-sensitive, for text passed through :func:`lowered`.
    pattern: re.Pattern[str]
    soft_family: str | None
    userunknown: bool
    phrases: tuple[tuple[str, str], ...] = ()
    #: Evidence the rule needs besides its phrase: an SMTP stage ("RCPT", "MAIL",
    #: "DATA", "CONN") or a status class ("5.1", "5.7"); empty = the phrase alone.
    stages: frozenset[str] = frozenset()
    #: (family, reason) when a remote server's bounce says it rather than a
    #: customer's own client error.
    in_bounce: tuple[str, str] | None = None


@dataclass(frozen=True)
class HostTable:
    """Reply codes a big receiver documents publicly, keyed by its host names."""

    id: str
    hosts: re.Pattern[str]
    #: (entry id, status or reply code, family, reason)
    codes: tuple[tuple[str, str, str, str], ...]
    #: The provider's own error code in its reply text (one group), e.g. Orange's
    #: "OFR_506" or "LPN000_630", and what each documented one means.
    token: re.Pattern[str] | None = None
    own: tuple[tuple[str, str, str, str], ...] = ()


@dataclass(frozen=True)
class Catalogue:
    families: Mapping[str, Family]
    rules: tuple[Rule, ...]
    status: Mapping[str, tuple[str, str]]
    replycode: Mapping[str, tuple[str, str]]
    decisive: frozenset[str]
    hosts: tuple[HostTable, ...] = ()
    reasons: Mapping[str, Reason] = field(default_factory=lambda: MappingProxyType({}))
    #: Ids switched off in this copy (see :meth:`without`).
    disabled: frozenset[str] = frozenset()

    def without(self, disabled: frozenset[str]) -> Catalogue:
        """A copy with the named phrases and table entries switched off.

        Phrase ids are ``<rule id>:<n>``; a whole rule is switched off by its id;
        table entries are ``status:<code>``, ``reply:<code>`` and
        ``<host table id>:<code>``. Copies are cached, so a benchmark that asks for
        the same set again pays nothing.
        """
        if not disabled:
            return self
        key = (id(self), disabled)
        cached = _WITHOUT.get(key)
        if cached is None:
            cached = _without(self, disabled)
            _WITHOUT[key] = cached
        return cached

    def all_ids(self) -> list[str]:
        """Every switchable id: phrases, code-table and host-table entries."""
        ids = [pid for rule in self.rules for pid, _ in rule.phrases]
        ids += [f"status:{code}" for code in self.status]
        ids += [f"reply:{code}" for code in self.replycode]
        ids += [entry for table in self.hosts for entry, *_ in table.codes + table.own]
        return ids


_WITHOUT: dict[tuple[int, frozenset[str]], Catalogue] = {}


def _without(cat: Catalogue, disabled: frozenset[str]) -> Catalogue:
    rules = []
    for rule in cat.rules:
        if rule.id in disabled:
            continue
        kept = tuple((pid, src) for pid, src in rule.phrases if pid not in disabled)
        if not kept:
            continue
        if len(kept) != len(rule.phrases):
            rule = replace(rule, pattern=_compile([src for _, src in kept]), phrases=kept)
        rules.append(rule)
    hosts = tuple(
        replace(t, codes=tuple(c for c in t.codes if c[0] not in disabled),
                own=tuple(c for c in t.own if c[0] not in disabled))
        for t in cat.hosts
    )
    return replace(
        cat,
        rules=tuple(rules),
        status=MappingProxyType({k: v for k, v in cat.status.items()
                                 if f"status:{k}" not in disabled}),
        replycode=MappingProxyType({k: v for k, v in cat.replycode.items()
                                    if f"reply:{k}" not in disabled}),
        hosts=hosts,
        disabled=cat.disabled | disabled,
    )


def _pair(value: Any) -> tuple[str, str]:
    family, reason = value
    return str(family), str(reason)


_SPACE_OUTSIDE_CLASS = re.compile(r"(\[[^\]]*\])|( \?)| ")


def _flexible_spaces(pattern: str) -> str:
    # Bounces wrap long replies anywhere, so a space in a phrase matches any run
    # of whitespace, line breaks included (but not inside a [character class]).
    return _SPACE_OUTSIDE_CLASS.sub(
        lambda m: m.group(1) or (r"\s*" if m.group(2) else r"\s+"), pattern
    )


def lower_literals(pattern: str) -> str:
    """``pattern`` with its literal letters in lower case, escapes (``\\S``, ``\\B``) kept."""
    return re.sub(r"\\.|[^\\]+", lambda m: m.group(0) if m.group(0)[0] == "\\"
                  else m.group(0).lower(), pattern, flags=re.DOTALL)


def lowered(text: str) -> str:
    """``text`` in lower case, character for character (positions stay valid).

    Rule patterns are compiled case-sensitively from lower-cased sources and
    searched over lower-cased text: for Python's regular expressions a
    case-insensitive scan costs several times a case-sensitive one.
    """
    low = text.lower()
    if len(low) == len(text):
        return low
    # A few characters lower-case to two ("İ"): keep those as they are.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _compile(patterns: list[str]) -> re.Pattern[str]:
    # One alternation per rule: a single scan finds the earliest phrase of the
    # rule. Compiled for lower-cased text (see :func:`lowered`).
    return re.compile("|".join(f"(?:{lower_literals(_flexible_spaces(p))})" for p in patterns))


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    """Build a :class:`Catalogue` from the decoded TOML mapping.

    Raises ``ValueError`` when a rule or code names a family that is not defined,
    so a typo in the data fails at import time rather than at diagnosis time.
    """
    clients_data: Mapping[str, Mapping[str, str]] = data.get("clients", {})
    families: dict[str, Family] = {}
    for name, fam in data["families"].items():
        families[name] = Family(
            name=name,
            title=fam["title"],
            cause=fam["cause"],
            fix=fam["fix"],
            client_side=bool(fam.get("client", False)),
            confirm=tuple(fam.get("confirm", ())),
            rule_out=tuple(fam.get("rule_out", ())),
            clients=MappingProxyType(dict(clients_data.get(name, {}))),
        )
    rules = tuple(
        Rule(
            id=r["id"],
            family=r["family"],
            reason=r["reason"],
            pattern=_compile(r["patterns"]),
            soft_family=r.get("soft_family"),
            userunknown=bool(r.get("userunknown", False)),
            phrases=tuple((f"{r['id']}:{n}", p) for n, p in enumerate(r["patterns"], 1)),
            stages=frozenset(r.get("stages", ())),
            in_bounce=_pair(r["in_bounce"]) if "in_bounce" in r else None,
        )
        for r in data["rules"]
    )
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"catalogue rule ids used twice: {duplicates}")
    hosts = tuple(
        HostTable(
            id=f"host-{t['id']}",
            hosts=re.compile(t["hosts"], re.IGNORECASE),
            codes=tuple(
                (f"host-{t['id']}:{code}", code, *_pair(value))
                for code, value in t.get("codes", {}).items()
            ),
            token=re.compile(t["token"], re.IGNORECASE) if "token" in t else None,
            own=tuple(
                (f"host-{t['id']}:own-{code}", code, *_pair(value))
                for code, value in t.get("own", {}).items()
            ),
        )
        for t in data.get("hosts", [])
    )
    status = {k: _pair(v) for k, v in data.get("status", {}).items()}
    replycode = {k: _pair(v) for k, v in data.get("replycode", {}).items()}
    used = [r.family for r in rules] + [r.soft_family for r in rules if r.soft_family]
    used += [r.in_bounce[0] for r in rules if r.in_bounce]
    used += [f for f, _ in status.values()] + [f for f, _ in replycode.values()]
    used += [c[2] for t in hosts for c in t.codes + t.own]
    unknown = sorted(set(used) - families.keys())
    if unknown:
        raise ValueError(f"catalogue names undefined families: {unknown}")
    return Catalogue(
        families=MappingProxyType(families),
        rules=rules,
        status=MappingProxyType(status),
        replycode=MappingProxyType(replycode),
        decisive=frozenset(data.get("decisive", {}).get("codes", ())),
        hosts=hosts,
        reasons=MappingProxyType({
            name: Reason(name, str(r["cause"]), str(r["fix"]))
            for name, r in data.get("reasons", {}).items()
        }),
    )


@cache
def load_catalogue() -> Catalogue:
    """Return the packaged catalogue (parsed once per process)."""
    text = resources.files(__package__).joinpath("catalogue.toml").read_text("utf-8")
    return parse_catalogue(tomllib.loads(text))


def reason(name: str) -> Reason | None:
    """Return the plain-words text of a bounce reason, when the catalogue has one."""
    return load_catalogue().reasons.get(name)


def family(name: str) -> Family:
    """Return the catalogue entry for a family name (``other`` when unknown)."""
    families = load_catalogue().families
    return families.get(name, families["other"])
