"""A domain's DNS health: what is published, what we recommend, and a verdict per record.

`check_domain` looks records up through `Lookup` (dnspython against the resolvers of the
``dns_resolvers`` setting, one overall timeout, no cache, no search list) and judges each of
``mx``, ``spf``, ``dkim``, ``dmarc``, ``ptr``, ``mta-sts`` and ``autoconfig`` as ``ok``,
``missing``, ``wrong`` or ``conflicting`` (two records where one is allowed). `judge` is
pure: it takes the looked-up texts, so the rules are testable without a DNS server.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Sequence

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

from .dkim import parse_tags, publishes, record_name
from .dnscheck import DEFAULT_TIMEOUT, Resolver
from .dnsrecords import DkimPublic, IPAddress, MailServer, Record, mta_sts_id, recommended

RECORDS = ("mx", "spf", "dkim", "dmarc", "ptr", "mta-sts", "autoconfig")
STATUSES = ("ok", "missing", "wrong", "conflicting")
#: Not looked up because DNS did not answer (shown as such; never "ok").
UNANSWERED = "DNS did not answer"


@dataclasses.dataclass(frozen=True)
class Verdict:
    record: str
    status: str
    #: What DNS holds (record texts; empty when nothing is published).
    published: tuple[str, ...]
    #: Zone-file lines that would make the record ok.
    recommended: tuple[str, ...]
    #: One sentence for the domain's owner.
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"record": self.record, "status": self.status, "published": list(self.published),
                "recommended": list(self.recommended), "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Verdict:
        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            assert isinstance(value, list)
            return tuple(str(v) for v in value)

        return cls(str(data["record"]), str(data["status"]), strings("published"),
                   strings("recommended"), str(data.get("message", "")))


class Lookup:
    """Record texts by name and type: [] when there is none, None when DNS did not answer.

    Once DNS has not answered, every later lookup of the same `Lookup` answers None at once:
    a dead resolver costs one check a single timeout, not one per record.
    """

    def __init__(self, resolvers: Sequence[Resolver] = (), timeout: float = DEFAULT_TIMEOUT):
        if resolvers:
            res = dns.resolver.Resolver(configure=False)
            res.nameservers = [dns.nameserver.Do53Nameserver(r.host, r.port) for r in resolvers]
        else:
            res = dns.resolver.Resolver()
        res.lifetime = timeout
        res.timeout = min(timeout, 2.0)
        res.cache = None  # a fixed record must show as fixed at the next "check again"
        self.resolver = res
        self.unanswered = False

    def __call__(self, name: str, rdtype: str) -> list[str] | None:
        if self.unanswered:
            return None
        try:
            answer = self.resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException:
            self.unanswered = True
            return None
        out: list[str] = []
        for rdata in answer.rrset or ():
            if rdata.rdtype != dns.rdatatype.from_text(rdtype):
                continue  # the CNAME in front of an answer
            if rdata.rdtype == dns.rdatatype.TXT:
                out.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            elif rdata.rdtype == dns.rdatatype.MX:
                out.append(rdata.exchange.to_text(omit_final_dot=True).lower())
            elif rdata.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.PTR):
                out.append(rdata.target.to_text(omit_final_dot=True).lower())
            elif rdata.rdtype == dns.rdatatype.SRV:
                out.append(f"{rdata.port} {rdata.target.to_text(omit_final_dot=True).lower()}")
            else:
                out.append(rdata.to_text())
        return out


LookupFn = Callable[[str, str], "list[str] | None"]


def reverse_name(address: IPAddress) -> str:
    return dns.reversename.from_address(str(address)).to_text(omit_final_dot=True)


@dataclasses.dataclass(frozen=True)
class Published:
    """Everything looked up for one domain (None: DNS did not answer that one)."""

    mx: list[str] | None
    txt: list[str] | None
    dkim: dict[str, list[str] | None]
    dmarc: list[str] | None
    ptr: dict[str, list[str] | None]
    mta_sts: list[str] | None
    #: Where ``mta-sts.<domain>`` points (CNAME target or addresses): the policy's host.
    mta_sts_host: list[str] | None
    autoconfig: list[str] | None
    autoconfig_a: list[str] | None
    submission_srv: list[str] | None


def look_up(domain: str, server: MailServer, dkim: Sequence[DkimPublic],
            lookup: LookupFn) -> Published:
    autoconfig = lookup(f"autoconfig.{domain}", "CNAME")
    policy_host = lookup(f"mta-sts.{domain}", "CNAME")
    return Published(
        mx=lookup(domain, "MX"),
        txt=lookup(domain, "TXT"),
        dkim={k.selector: lookup(record_name(k.selector, domain), "TXT") for k in dkim},
        dmarc=lookup(f"_dmarc.{domain}", "TXT"),
        ptr={str(a): lookup(reverse_name(a), "PTR") for a in server.addresses},
        mta_sts=lookup(f"_mta-sts.{domain}", "TXT"),
        mta_sts_host=policy_host or lookup(f"mta-sts.{domain}", "A"),
        autoconfig=autoconfig,
        autoconfig_a=[] if autoconfig else lookup(f"autoconfig.{domain}", "A"),
        submission_srv=lookup(f"_submission._tcp.{domain}", "SRV"),
    )


def _lines(records: list[Record], kind: str) -> tuple[str, ...]:
    return tuple(r.line for r in records if r.kind == kind)


def _spf_covers(spf: str, server: MailServer, mx_ok: bool) -> bool:
    """Does this SPF record name the server? ip4/ip6 ranges holding every address, ``a:`` the
    mail host, or ``mx`` while the MX points here (``include:`` is not followed)."""
    terms = spf.lower().split()[1:]
    qualified = [t.lstrip("+") for t in terms if not t.startswith(("-", "~", "?"))]
    if "mx" in qualified and mx_ok:
        return True
    if f"a:{server.mail_hostname.lower()}" in qualified:
        return True
    if not server.addresses:
        return False
    networks = []
    for term in qualified:
        kind, _, value = term.partition(":")
        if kind in ("ip4", "ip6") and value:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                continue
    return all(any(a in n for n in networks if n.version == a.version)
               for a in server.addresses)


def judge(domain: str, server: MailServer, dkim: Sequence[DkimPublic],
          found: Published) -> list[Verdict]:
    """One verdict per entry of `RECORDS`, from what `look_up` found."""
    records = recommended(domain, server, tuple(dkim))
    out: dict[str, Verdict] = {}

    def verdict(record: str, status: str, published: Sequence[str] | None, message: str,
                lines: tuple[str, ...] | None = None) -> None:
        if published is None:
            status, message = "missing", f"{UNANSWERED}; checked again on 'check again'."
        out[record] = Verdict(record, status, tuple(published or ()),
                              _lines(records, record) if lines is None else lines, message)

    host = server.mail_hostname.lower()
    # MX
    mx_ok = bool(found.mx) and host in (found.mx or [])
    if not found.mx:
        verdict("mx", "missing", found.mx, f"{domain} has no MX record: mail to it cannot "
                "arrive here.")
    elif mx_ok:
        verdict("mx", "ok", found.mx, f"The MX record points at {host}.")
    else:
        verdict("mx", "wrong", found.mx, f"The MX points elsewhere ({', '.join(found.mx)}), "
                f"not at {host}: mail for {domain} does not reach this server.")
    # SPF
    spf = [t for t in (found.txt or []) if t.lower().startswith("v=spf1")]
    if found.txt is None:
        verdict("spf", "missing", None, "")
    elif not spf:
        verdict("spf", "missing", spf, "No SPF record: receivers cannot tell this server may "
                f"send for {domain}.")
    elif len(spf) > 1:
        verdict("spf", "conflicting", spf, "Two or more SPF records: receivers treat that as "
                "an error (RFC 7208 4.5). Publish exactly one.")
    elif not _spf_covers(spf[0], server, mx_ok):
        includes = " (include: and redirect= are not followed by this check)" if re.search(
            r"\b(include:|redirect=)", spf[0], re.I) else ""
        verdict("spf", "wrong", spf, "The SPF record does not name this server, so mail sent "
                f"from here fails SPF{includes}.")
    elif spf[0].lower().rstrip().endswith("+all") or " +all" in spf[0].lower():
        verdict("spf", "wrong", spf, "The SPF record ends in +all: anyone may send as "
                f"{domain}.")
    else:
        verdict("spf", "ok", spf, "The SPF record names this server.")
    # DKIM
    if not dkim:
        verdict("dkim", "missing", [], "No DKIM key yet: create one, then publish its record.")
    else:
        texts = [t for k in dkim for t in (found.dkim.get(k.selector) or [])]
        unanswered = any(found.dkim.get(k.selector) is None for k in dkim)
        absent = [k for k in dkim if not found.dkim.get(k.selector)]
        differ = [k for k in dkim if found.dkim.get(k.selector)
                  and not any(publishes(t, k.public_key) for t in found.dkim[k.selector] or [])]
        if unanswered:
            verdict("dkim", "missing", None, "")
        elif differ:
            verdict("dkim", "wrong", texts, "The DKIM record of "
                    f"{', '.join(k.selector for k in differ)} holds another key: signatures "
                    "fail.")
        elif absent:
            verdict("dkim", "missing", texts, "DNS does not publish the DKIM key "
                    f"{', '.join(k.selector for k in absent)} yet.")
        else:
            verdict("dkim", "ok", texts, "Every DKIM key is published.")
    dkim_ok = out["dkim"].status == "ok"
    # DMARC
    dmarc = [t for t in (found.dmarc or []) if t.lower().startswith("v=dmarc1")]
    if found.dmarc is None:
        verdict("dmarc", "missing", None, "")
    elif not dmarc:
        verdict("dmarc", "missing", dmarc, "No DMARC record: start with p=none and read the "
                "reports.")
    elif len(dmarc) > 1:
        verdict("dmarc", "conflicting", dmarc, "Two or more DMARC records: receivers ignore "
                "them all.")
    elif parse_tags(dmarc[0]).get("p", "").lower() in ("reject", "quarantine") and not dkim_ok:
        verdict("dmarc", "wrong", dmarc, f"DMARC asks receivers to {parse_tags(dmarc[0])['p']} "
                "mail that fails, but DKIM is not published: forwarded mail from "
                f"{domain} will be refused. Publish DKIM first (or use p=none).")
    else:
        verdict("dmarc", "ok", dmarc, "A DMARC policy is published.")
    # PTR of each server address
    ptr_lines = tuple(f"{reverse_name(a)}. {3600} IN PTR {host}." for a in server.addresses)
    if not server.addresses:
        verdict("ptr", "missing", [], "The server's public addresses are not set "
                "(mail_server_addresses), so reverse DNS cannot be checked.", ())
    else:
        names = [n for a in server.addresses for n in (found.ptr.get(str(a)) or [])]
        if any(found.ptr.get(str(a)) is None for a in server.addresses):
            verdict("ptr", "missing", None, "", ptr_lines)
        elif any(not found.ptr.get(str(a)) for a in server.addresses):
            verdict("ptr", "missing", names, "A server address has no reverse DNS (PTR): many "
                    "receivers refuse its mail. The provider of the address sets it.", ptr_lines)
        elif any(found.ptr.get(str(a)) != [host] for a in server.addresses):
            verdict("ptr", "wrong", names, f"Reverse DNS does not name {host}, the name the "
                    "server greets with (HELO). The provider of the address sets it.", ptr_lines)
        else:
            verdict("ptr", "ok", names, f"Reverse DNS names {host}.", ptr_lines)
    # MTA-STS
    sts = [t for t in (found.mta_sts or []) if t.lower().startswith("v=stsv1")]
    if found.mta_sts is None:
        verdict("mta-sts", "missing", None, "")
    elif not sts:
        verdict("mta-sts", "missing", sts, "No MTA-STS record: senders may deliver without "
                "TLS.")
    elif len(sts) > 1:
        verdict("mta-sts", "conflicting", sts, "Two or more MTA-STS records: senders ignore "
                "them.")
    elif parse_tags(sts[0]).get("id") != mta_sts_id(host):
        verdict("mta-sts", "wrong", sts, "The MTA-STS id is not the current policy's: senders "
                "keep an old policy.")
    elif not found.mta_sts_host:
        verdict("mta-sts", "missing", sts, f"mta-sts.{domain} does not resolve, so senders "
                "cannot fetch the policy.")
    else:
        verdict("mta-sts", "ok", sts, "MTA-STS is published.")
    # autoconfig: the CNAME (or its address) and the submission SRV record
    addresses = {str(a) for a in server.addresses}
    target = found.autoconfig or []
    here = host in target or bool(addresses and set(found.autoconfig_a or []) & addresses)
    srv = found.submission_srv or []
    submit_host = (server.smtp_host or host).lower()
    srv_ok = any(s.split()[-1] == submit_host for s in srv)
    shown = [*target, *(found.autoconfig_a or []), *(f"SRV {s}" for s in srv)]
    if found.autoconfig is None or found.submission_srv is None:
        verdict("autoconfig", "missing", None, "")
    elif here and srv_ok:
        verdict("autoconfig", "ok", shown, "Mail programs find their settings.")
    elif not target and not found.autoconfig_a and not srv:
        verdict("autoconfig", "missing", shown, "No autoconfig records: people type the "
                "server settings by hand.")
    else:
        verdict("autoconfig", "wrong", shown, "The autoconfig records do not all point at "
                "this server.")
    return [out[r] for r in RECORDS]


def check_domain(domain: str, server: MailServer, dkim: Sequence[DkimPublic],
                 lookup: LookupFn) -> list[Verdict]:
    return judge(domain, server, dkim, look_up(domain, server, dkim, lookup))
