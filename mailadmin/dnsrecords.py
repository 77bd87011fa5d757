"""The DNS records we recommend for a hosted domain, as zone-file lines ready to paste.

Pure functions from plain values (no database, no lookups): MX, SPF with the server's public
addresses, DKIM, DMARC (``p=none`` with reports to start), autoconfig / autodiscover (CNAME,
and the SRV records of RFC 6186), MTA-STS (``_mta-sts`` TXT; the policy itself is served by
the panel at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``) and TLS-RPT (RFC 8460).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re

from .errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
TTL = 3600
#: The longest string in one TXT record string (RFC 1035 character-string).
TXT_CHUNK = 255
MAX_SERVER_ADDRESSES = 16
#: How long a sender may cache the MTA-STS policy (one week, the RFC 8461 example).
MTA_STS_MAX_AGE = 604800


def parse_server_addresses(text: str | None) -> tuple[IPAddress, ...]:
    """``192.0.2.10, 2001:db8::25`` -> addresses (public ones: what SPF and PTR are about).

    :raises ValidationError: naming the bad entry.
    """
    found: list[IPAddress] = []
    for word in re.split(r"[\s,;]+", (text or "").strip()):
        if not word:
            continue
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            raise ValidationError(f"{word!r} is not an IPv4 or IPv6 address.",
                                  field="value") from None
        if address.is_unspecified or address.is_multicast:
            raise ValidationError(f"{word!r} cannot be a mail server's address.", field="value")
        found.append(address)
    if len(found) > MAX_SERVER_ADDRESSES:
        raise ValidationError(f"At most {MAX_SERVER_ADDRESSES} addresses.", field="value")
    return tuple(dict.fromkeys(found))


@dataclasses.dataclass(frozen=True)
class DkimPublic:
    selector: str
    algorithm: str
    public_key: str


@dataclasses.dataclass(frozen=True)
class MailServer:
    """What the records point at (the server settings)."""

    mail_hostname: str
    addresses: tuple[IPAddress, ...] = ()
    smtp_host: str = ""
    imap_host: str = ""
    pop3_host: str = ""
    submission_port: int = 587
    imap_port: int = 993
    pop3_port: int = 995


@dataclasses.dataclass(frozen=True)
class Record:
    #: What the record is for: mx, spf, dkim, dmarc, autoconfig, mta-sts, tls-rpt.
    kind: str
    #: Owner name, without the final dot.
    name: str
    rtype: str
    #: The record's data as it reads in a zone file (TXT: the quoted strings).
    data: str
    #: For TXT records, the text a lookup returns (the strings joined); else `data`.
    value: str

    @property
    def line(self) -> str:
        return f"{self.name}. {TTL} IN {self.rtype} {self.data}"


def txt_data(text: str) -> str:
    """A TXT value as zone-file strings, split into 255-character chunks."""
    chunks = [text[i:i + TXT_CHUNK] for i in range(0, len(text), TXT_CHUNK)] or [""]
    return " ".join(f'"{chunk}"' for chunk in chunks)


def _txt(kind: str, name: str, text: str) -> Record:
    return Record(kind, name, "TXT", txt_data(text), text)


def _other(kind: str, name: str, rtype: str, data: str) -> Record:
    return Record(kind, name, rtype, data, data)


def spf_value(server: MailServer) -> str:
    mechanisms = [f"ip{a.version}:{a}" for a in server.addresses] or [f"a:{server.mail_hostname}"]
    return "v=spf1 mx " + " ".join(mechanisms) + " ~all"


def dmarc_value(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}; fo=1"


def tls_rpt_value(domain: str) -> str:
    return f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"


def mta_sts_policy(mail_hostname: str) -> str:
    """The policy file (RFC 8461 section 3.2); ``testing`` until the owner has seen reports."""
    return (f"version: STSv1\r\nmode: testing\r\nmx: {mail_hostname}\r\n"
            f"max_age: {MTA_STS_MAX_AGE}\r\n")


def mta_sts_id(mail_hostname: str) -> str:
    """Changes exactly when the policy text changes, so senders fetch the new one."""
    return hashlib.sha256(mta_sts_policy(mail_hostname).encode()).hexdigest()[:20]


def _srv(kind: str, service: str, domain: str, host: str, port: int) -> Record:
    return _other(kind, f"_{service}._tcp.{domain}", "SRV", f"0 1 {port} {host}.")


def recommended(domain: str, server: MailServer, dkim: tuple[DkimPublic, ...]) -> list[Record]:
    """Every record we recommend for `domain` (ASCII), in the order the page shows them."""
    from .dkim import record_name, record_value

    mx = server.mail_hostname
    records = [
        _other("mx", domain, "MX", f"10 {mx}."),
        _txt("spf", domain, spf_value(server)),
    ]
    records += [_txt("dkim", record_name(k.selector, domain), record_value(k.algorithm,
                                                                          k.public_key))
                for k in dkim]
    records.append(_txt("dmarc", f"_dmarc.{domain}", dmarc_value(domain)))
    records += [
        _other("autoconfig", f"autoconfig.{domain}", "CNAME", f"{mx}."),
        _other("autoconfig", f"autodiscover.{domain}", "CNAME", f"{mx}."),
        _srv("autoconfig", "submission", domain, server.smtp_host or mx, server.submission_port),
        _srv("autoconfig", "imaps" if server.imap_port == 993 else "imap", domain,
             server.imap_host or mx, server.imap_port),
        _srv("autoconfig", "pop3s" if server.pop3_port == 995 else "pop3", domain,
             server.pop3_host or mx, server.pop3_port),
        _txt("mta-sts", f"_mta-sts.{domain}", f"v=STSv1; id={mta_sts_id(mx)}"),
        _other("mta-sts", f"mta-sts.{domain}", "CNAME", f"{mx}."),
        _txt("tls-rpt", f"_smtp._tls.{domain}", tls_rpt_value(domain)),
    ]
    return records


def zone_text(records: list[Record]) -> str:
    return "".join(r.line + "\n" for r in records)
