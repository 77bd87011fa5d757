"""Proof of domain control over DNS: the challenge TXT record, or an MX pointing here.

Lookups go to the resolvers the admin configured (``dns_resolvers``: ``host:port`` entries,
empty for the system's), with one overall timeout, so a slow or dead DNS server delays a check
by seconds at most and never hangs a request or the background loop.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Sequence

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from .errors import ValidationError

CHALLENGE_LABEL = "_mailadmin-challenge"
DEFAULT_TIMEOUT = 5.0
MAX_RESOLVERS = 8


@dataclasses.dataclass(frozen=True)
class Resolver:
    host: str
    port: int = 53

    @property
    def text(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_resolvers(text: str | None, *, field: str = "value") -> tuple[Resolver, ...]:
    """``127.0.0.1:5353, 192.0.2.1, [::1]:53`` -> resolvers; IP addresses only (a resolver
    named by host name would need a resolver to find it).

    :raises ValidationError: naming the bad entry.
    """
    found: list[Resolver] = []
    for word in re.split(r"[\s,;]+", (text or "").strip()):
        if not word:
            continue
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([0-9.]+)(?::(\d{1,5}))?", word)
        if m is None:
            raise ValidationError(
                f"{word!r}: give a resolver as an IP address with an optional port, such as "
                "127.0.0.1:5353 or [::1]:53.", field=field)
        host = m.group(1) or m.group(3)
        port = int(m.group(2) or m.group(4) or 53)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValidationError(f"{word!r}: {host!r} is not an IP address.",
                                  field=field) from None
        if not 1 <= port <= 65535:
            raise ValidationError(f"{word!r}: the port must be 1 to 65535.", field=field)
        found.append(Resolver(str(address), port))
    if len(found) > MAX_RESOLVERS:
        raise ValidationError(f"At most {MAX_RESOLVERS} resolvers.", field=field)
    return tuple(dict.fromkeys(found))


def format_resolvers(resolvers: Sequence[Resolver]) -> str:
    return " ".join(r.text for r in resolvers)


@dataclasses.dataclass(frozen=True)
class DnsProof:
    verified: bool
    #: What was found, in words for the domain's owner.
    message: str


def _resolver(resolvers: Sequence[Resolver], timeout: float) -> dns.resolver.Resolver:
    if resolvers:
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver(r.host, r.port) for r in resolvers]
    else:
        res = dns.resolver.Resolver()
    res.lifetime = timeout
    res.timeout = min(timeout, 2.0)
    # cached answers would keep a domain pending after its owner fixed the record
    res.cache = None
    return res


def _lookup(res: dns.resolver.Resolver, name: str, rdtype: str) -> list[str] | None:
    """Record texts, [] when the name or record does not exist, None when DNS did not answer."""
    try:
        answer = res.resolve(name, rdtype, raise_on_no_answer=False, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration,
            dns.exception.DNSException):
        return None
    out: list[str] = []
    for rdata in answer.rrset or ():
        if rdata.rdtype == dns.rdatatype.TXT:
            out.append(b"".join(rdata.strings).decode("ascii", "replace"))
        elif rdata.rdtype == dns.rdatatype.MX:
            out.append(rdata.exchange.to_text(omit_final_dot=True).lower())
    return out


def check_dns(
    domain: str,
    token: str,
    mail_hostname: str,
    *,
    resolvers: Sequence[Resolver] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> DnsProof:
    """Does DNS show that the domain's owner wants its mail here?

    Verified when a TXT record of ``_mailadmin-challenge.<domain>`` is exactly `token`, or an
    MX record of the domain names `mail_hostname`.
    """
    res = _resolver(resolvers, timeout)
    challenge = f"{CHALLENGE_LABEL}.{domain}"
    texts = _lookup(res, challenge, "TXT")
    if texts and token in texts:
        return DnsProof(True, f"The TXT record {challenge} holds the token.")
    exchanges = _lookup(res, domain, "MX")
    if exchanges and mail_hostname.lower() in exchanges:
        return DnsProof(True, f"The MX record of {domain} points at {mail_hostname}.")
    if texts is None and exchanges is None:
        return DnsProof(False, "DNS did not answer; the check is repeated later.")
    found = (f"it holds {', '.join(repr(t[:80]) for t in texts[:3])}" if texts
             else "there is none")
    return DnsProof(False, f"No TXT record {challenge} with the token ({found}), and no MX "
                           f"record pointing at {mail_hostname}.")
