"""Load the error catalogue (``catalogue.toml``) into typed, read-only objects."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
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
class Rule:
    """Phrasings that identify one cause, with the family and Sisimai reason they imply."""

    id: str
    family: str
    reason: str
    pattern: re.Pattern[str]
    soft_family: str | None
    userunknown: bool


@dataclass(frozen=True)
class Catalogue:
    families: Mapping[str, Family]
    rules: tuple[Rule, ...]
    status: Mapping[str, tuple[str, str]]
    replycode: Mapping[str, tuple[str, str]]
    decisive: frozenset[str]


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


def _compile(patterns: list[str]) -> re.Pattern[str]:
    # One alternation per rule: a single scan finds the earliest phrase of the rule.
    return re.compile("|".join(f"(?:{_flexible_spaces(p)})" for p in patterns), re.IGNORECASE)


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
        )
        for r in data["rules"]
    )
    status = {k: _pair(v) for k, v in data.get("status", {}).items()}
    replycode = {k: _pair(v) for k, v in data.get("replycode", {}).items()}
    used = [r.family for r in rules] + [r.soft_family for r in rules if r.soft_family]
    used += [f for f, _ in status.values()] + [f for f, _ in replycode.values()]
    unknown = sorted(set(used) - families.keys())
    if unknown:
        raise ValueError(f"catalogue names undefined families: {unknown}")
    return Catalogue(
        families=MappingProxyType(families),
        rules=rules,
        status=MappingProxyType(status),
        replycode=MappingProxyType(replycode),
        decisive=frozenset(data.get("decisive", {}).get("codes", ())),
    )


@cache
def load_catalogue() -> Catalogue:
    """Return the packaged catalogue (parsed once per process)."""
    text = resources.files(__package__).joinpath("catalogue.toml").read_text("utf-8")
    return parse_catalogue(tomllib.loads(text))


def family(name: str) -> Family:
    """Return the catalogue entry for a family name (``other`` when unknown)."""
    families = load_catalogue().families
    return families.get(name, families["other"])
