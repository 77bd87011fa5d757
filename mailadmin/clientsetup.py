"""What mail programs are told about a mailbox: pure functions, no database, no Flask.

Three machine-readable answers, each offering only the protocols the mailbox may use:

* Thunderbird autoconfig (``config-v1.1.xml``, the "clientConfig" format);
* Outlook autodiscover, the plain-old-XML ("POX") response schema for an ``EMailAddress``;
* an Apple configuration profile (``.mobileconfig``, a property list; not signed).

Every document is built with `xml.etree.ElementTree` or `plistlib`, so no text (an address, a
host name) is ever spliced into markup. Host names and ports come from the server settings; the
security of a port follows the IANA assignment (993, 995 and 465 are implicit TLS, anything else
is STARTTLS), which is how the settings page describes them.

Plus, for people: the per-protocol settings table, step-by-step settings for common clients, and
a plain explanation of POP versus IMAP with a recommendation that fits the mailbox.
"""

from __future__ import annotations

import plistlib
import typing as t
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from .names import address_to_unicode
from .protocols import Protocol

__all__ = [
    "AUTODISCOVER_OUTLOOK_NS",
    "AUTODISCOVER_REQUEST_NS",
    "AUTODISCOVER_RESPONSE_NS",
    "POP_VS_IMAP",
    "Advice",
    "ClientGuide",
    "ClientSetup",
    "Endpoint",
    "ServerHosts",
    "advice_for",
    "apple_mobileconfig",
    "autodiscover_error",
    "build_setup",
    "client_guides",
    "outlook_autodiscover",
    "parse_autodiscover_request",
    "thunderbird_autoconfig",
]

Security = t.Literal["SSL", "STARTTLS"]

AUTODISCOVER_REQUEST_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
)
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)
#: An autodiscover request is a few hundred bytes; anything much larger is not one.
MAX_AUTODISCOVER_REQUEST = 8 * 1024

_IMPLICIT_TLS_PORTS: t.Final = frozenset({993, 995, 465})


class ServerHosts(t.Protocol):
    """The part of `mailadmin.models.ServerSettings` that mail programs are told."""

    imap_host: str
    pop3_host: str
    smtp_host: str
    imap_port: int
    pop3_port: int
    submission_port: int


@dataclass(frozen=True)
class Endpoint:
    """One server a mail program connects to."""

    protocol: Protocol
    host: str
    port: int
    security: Security

    @property
    def label(self) -> str:
        return self.protocol.label

    @property
    def incoming(self) -> bool:
        return self.protocol is not Protocol.SMTP

    @property
    def security_label(self) -> str:
        return "SSL/TLS" if self.security == "SSL" else "STARTTLS"


@dataclass(frozen=True)
class ClientSetup:
    """Everything a mail program needs for one mailbox (or, generic, for any address here).

    `address` is the ASCII address the user name is, or None for the generic answer given for
    an address that is not hosted here.
    """

    address: str | None
    domain: str
    endpoints: tuple[Endpoint, ...]
    provider_name: str
    #: The same servers on their other port (IMAP 143 and POP3 110 with STARTTLS, SMTP 465
    #: with TLS), for programs or networks that cannot use the preferred one.
    alternates: tuple[Endpoint, ...] = ()

    @property
    def username(self) -> str:
        return self.address or "your full mail address"

    @property
    def username_differs_from_address(self) -> bool:
        """True when the user name (ASCII, as the mail servers know it) is not spelled like
        the address people read (an internationalised domain)."""
        return self.address is not None and address_to_unicode(self.address) != self.address

    @property
    def incoming(self) -> tuple[Endpoint, ...]:
        # IMAP first: a program that takes the first offer gets the protocol that keeps mail
        # in sync across devices.
        return tuple(sorted((e for e in self.endpoints if e.incoming), key=lambda e: e.protocol))

    @property
    def outgoing(self) -> Endpoint | None:
        return next((e for e in self.endpoints if not e.incoming), None)

    def offers(self, protocol: Protocol) -> bool:
        return any(e.protocol == protocol for e in self.endpoints)


def _security(port: int) -> Security:
    return "SSL" if port in _IMPLICIT_TLS_PORTS else "STARTTLS"


def build_setup(
    hosts: ServerHosts,
    *,
    address: str | None,
    domain: str,
    imap: bool,
    pop3: bool,
    smtp: bool,
    provider_name: str | None = None,
) -> ClientSetup:
    """The servers a mailbox with these protocol permissions may use.

    A port set to 0 is not offered: the other port of the protocol (IMAP 143, POP3 110,
    SMTP 465) then becomes the preferred one, and a protocol with both ports off is left out
    even where the mailbox may use it.
    """
    alternate_ports: dict[Protocol, int | None] = {
        Protocol.IMAP: getattr(hosts, "imap_starttls_port", None),
        Protocol.POP3: getattr(hosts, "pop3_starttls_port", None),
        Protocol.SMTP: getattr(hosts, "smtps_port", None),
    }
    offered: list[tuple[Protocol, bool, str, int]] = [
        (Protocol.IMAP, imap, hosts.imap_host, hosts.imap_port),
        (Protocol.POP3, pop3, hosts.pop3_host, hosts.pop3_port),
        (Protocol.SMTP, smtp, hosts.smtp_host, hosts.submission_port),
    ]
    endpoints: list[Endpoint] = []
    alternates: list[Endpoint] = []
    for protocol, allowed, host, preferred in offered:
        ports = [p for p in (preferred, alternate_ports[protocol]) if p]
        if not allowed or not ports:
            continue
        endpoints.append(Endpoint(protocol, host, ports[0], _security(ports[0])))
        if len(ports) == 2 and ports[1] != ports[0]:
            alternates.append(Endpoint(protocol, host, ports[1], _security(ports[1])))
    return ClientSetup(
        address=address,
        domain=domain,
        endpoints=tuple(endpoints),
        provider_name=provider_name or domain,
        alternates=tuple(alternates),
    )


# --- Thunderbird ------------------------------------------------------------------------------


#: Unicode categories never accepted in an address a mail program asks about: control
#: characters (most cannot even be written in XML 1.0) and lone surrogates (not even in
#: UTF-8). Invisible format characters stay: ZWNJ and ZWJ are valid in some IDN labels.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})
#: Not characters in XML 1.0 either.
_NOT_XML = frozenset("\ufffe\uffff")


def control_character_in(text: str) -> str | None:
    """The first control character (or other character XML cannot carry) in `text`, if any."""
    for ch in text:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _NOT_XML:
            return ch
    return None


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    # ElementTree escapes markup but writes control characters as they are, which makes the
    # document ill-formed; nothing that reaches here may carry one.
    for value in (text or "", *attrib.values()):
        ch = control_character_in(value)
        if ch is not None and ch not in "\t\n\r":
            raise ValueError(f"U+{ord(ch):04X} cannot be written into the XML answer")
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _to_xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return t.cast(bytes, ET.tostring(root, encoding="utf-8", xml_declaration=True))


def thunderbird_autoconfig(setup: ClientSetup) -> bytes:
    """The ``clientConfig`` version 1.1 document Thunderbird (and K-9, FairEmail) read.

    The user name is Thunderbird's placeholder ``%EMAILADDRESS%`` (what the user typed), since
    the mail servers log in with the full address.
    """
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=setup.domain)
    _sub(provider, "domain", setup.domain)
    _sub(provider, "displayName", setup.provider_name)
    _sub(provider, "displayShortName", setup.provider_name)
    # Preferred servers first (Thunderbird tries them in order), then the alternative ports.
    ordered = (
        *setup.incoming,
        *([setup.outgoing] if setup.outgoing else []),
        *sorted(setup.alternates, key=lambda e: (not e.incoming, e.protocol)),
    )
    for endpoint in ordered:
        tag = "incomingServer" if endpoint.incoming else "outgoingServer"
        server = _sub(provider, tag, type=endpoint.protocol)
        _sub(server, "hostname", endpoint.host)
        _sub(server, "port", str(endpoint.port))
        _sub(server, "socketType", endpoint.security)
        _sub(server, "authentication", "password-cleartext")
        _sub(server, "username", "%EMAILADDRESS%")
    return _to_xml(root)


# --- Outlook autodiscover ---------------------------------------------------------------------


class _UnsafeXML(ValueError):
    pass


def parse_autodiscover_request(body: bytes) -> str | None:
    """The ``EMailAddress`` of an Outlook autodiscover request, or None if there is none.

    The body comes from anyone on the internet, so it is read with a bare expat parser that
    refuses any DOCTYPE (and so every entity definition: no "billion laughs", no external
    entities) and anything over `MAX_AUTODISCOVER_REQUEST` bytes. A malformed body gives None.
    """
    if len(body) > MAX_AUTODISCOVER_REQUEST:
        return None
    parser = expat.ParserCreate(namespace_separator=" ")
    found: list[str] = []
    path: list[str] = []
    text: list[str] = []

    def refuse_doctype(*_args: t.Any) -> None:
        raise _UnsafeXML("DOCTYPE")

    def start(name: str, _attrs: dict[str, str]) -> None:
        path.append(name.rpartition(" ")[2])
        text.clear()

    def end(_name: str) -> None:
        if path[-2:] == ["Request", "EMailAddress"] and not found:
            found.append("".join(text).strip())
        path.pop()

    def chars(data: str) -> None:
        text.append(data)

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, _UnsafeXML, ValueError):
        return None
    return found[0] if found and found[0] else None


def _autodiscover_root() -> ET.Element:
    return ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)


def outlook_autodiscover(setup: ClientSetup, login_name: str) -> bytes:
    """The POX autodiscover response (``responseschema/2006a``, account type "email").

    `login_name` is the address Outlook asked about (the mail servers log in with it).
    """
    root = _autodiscover_root()
    response = _sub(root, "Response", xmlns=AUTODISCOVER_OUTLOOK_NS)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for endpoint in (*setup.incoming, *([setup.outgoing] if setup.outgoing else [])):
        protocol = _sub(account, "Protocol")
        _sub(protocol, "Type", endpoint.protocol.label)
        _sub(protocol, "Server", endpoint.host)
        _sub(protocol, "Port", str(endpoint.port))
        _sub(protocol, "DomainRequired", "off")
        _sub(protocol, "LoginName", login_name)
        _sub(protocol, "SPA", "off")
        # SSL "on" means encrypted; Encryption says how (SSL = implicit TLS, TLS = STARTTLS).
        _sub(protocol, "SSL", "on")
        _sub(protocol, "Encryption", "SSL" if endpoint.security == "SSL" else "TLS")
        _sub(protocol, "AuthRequired", "on")
        if not endpoint.incoming:
            _sub(protocol, "UsePOPAuth", "on")
            _sub(protocol, "SMTPLast", "off")
    return _to_xml(root)


def autodiscover_error(code: int, message: str) -> bytes:
    """An autodiscover error response (600 "Invalid Request", 601 "Provider not available")."""
    root = _autodiscover_root()
    response = _sub(root, "Response")
    error = _sub(response, "Error", Id="0", Time="00:00:00.0000000")
    _sub(error, "ErrorCode", str(code))
    _sub(error, "Message", message)
    _sub(error, "DebugData", "")
    return _to_xml(root)


# --- Apple configuration profile --------------------------------------------------------------


_PROFILE_NAMESPACE = uuid.UUID("5c1f3b7e-2a4d-4f0e-9b8a-6d7c3e1f0a92")


def apple_mobileconfig(setup: ClientSetup, *, identifier_prefix: str | None = None) -> bytes | None:
    """An unsigned configuration profile with one mail account (IMAP if allowed, else POP).

    The payload identifiers and UUIDs are derived from the address, so downloading the profile
    again replaces the installed one instead of adding a second account. None when the mailbox
    may use neither IMAP nor POP3 (a mail account needs an incoming server). Without SMTP the
    outgoing server keys are left out; iOS then may refuse the profile, which is honest: the
    mailbox cannot send.
    """
    if setup.address is None:
        raise ValueError("a configuration profile is made for one mailbox")
    if identifier_prefix is None:
        # Reverse-DNS of the mailbox's domain, as Apple's identifiers are written.
        identifier_prefix = ".".join(reversed(setup.domain.split(".")))
    incoming = setup.incoming[0] if setup.incoming else None
    if incoming is None:
        return None
    outgoing = setup.outgoing
    account_id = f"{identifier_prefix}.mail.{setup.address}"
    account: dict[str, t.Any] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": account_id,
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, account_id)).upper(),
        "PayloadDisplayName": f"Mail: {setup.address}",
        "EmailAccountDescription": setup.address,
        "EmailAccountType": (
            "EmailTypeIMAP" if incoming.protocol is Protocol.IMAP else "EmailTypePOP"
        ),
        "EmailAddress": setup.address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": incoming.host,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": setup.address,
        "PreventMove": False,
        "PreventAppSheet": False,
        "SMIMEEnabled": False,
    }
    if outgoing is not None:
        account.update(
            {
                "OutgoingMailServerAuthentication": "EmailAuthPassword",
                "OutgoingMailServerHostName": outgoing.host,
                "OutgoingMailServerPortNumber": outgoing.port,
                "OutgoingMailServerUseSSL": True,
                "OutgoingMailServerUsername": setup.address,
                "OutgoingPasswordSameAsIncomingPassword": True,
            }
        )
    profile_id = f"{identifier_prefix}.profile.{setup.address}"
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": profile_id,
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, profile_id)).upper(),
        "PayloadDisplayName": f"Mail settings for {setup.address}",
        "PayloadDescription": (
            f"Sets up {setup.address} in Apple Mail. You will be asked for the mailbox password."
        ),
        "PayloadOrganization": setup.provider_name,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# --- For people -------------------------------------------------------------------------------

#: Plain words on the two ways of reading mail, for the device page.
POP_VS_IMAP: t.Final[dict[str, tuple[str, ...]]] = {
    "IMAP": (
        "Your mail stays on the server; each phone, tablet and computer shows the same folders.",
        "Read, delete or file a message on one device and the others show the change.",
        "Needs a connection to open messages not yet stored on the device, and counts against "
        "the mailbox's quota for as long as you keep the mail.",
        "Use it when you read mail on more than one device, or want the server to keep it.",
    ),
    "POP3": (
        "Downloads new mail to one device and usually removes it from the server.",
        "Works offline once downloaded and frees space on the server.",
        "Other devices do not see mail that one device has already downloaded, and your folders "
        "and sent mail exist only on that device (back it up yourself).",
        "Use it only for a single computer that keeps the mail, such as an archive.",
    ),
}


@dataclass(frozen=True)
class Advice:
    recommended: str | None
    text: str
    warning: str | None = None


def advice_for(setup: ClientSetup) -> Advice:
    """Which protocol to choose for this mailbox, in a sentence (and a warning where needed)."""
    if setup.offers(Protocol.IMAP):
        text = "Use IMAP: your mail stays on the server and in sync on all your devices."
        if setup.offers(Protocol.POP3):
            text += " Choose POP3 only for a single computer that keeps the mail."
        return Advice("IMAP", text)
    if setup.offers(Protocol.POP3):
        return Advice(
            "POP3",
            "This mailbox may use POP3 only.",
            warning=(
                "With POP3, the first device that fetches a message usually removes it from the "
                "server, so your other devices will not see it. Set up one device only, or tell "
                "each program to leave messages on the server."
            ),
        )
    return Advice(
        None,
        "This mailbox may not be read by mail programs (IMAP and POP3 are off). "
        "Ask whoever manages your mail.",
    )


@dataclass(frozen=True)
class ClientGuide:
    name: str
    steps: tuple[str, ...]


def _server_line(endpoint: Endpoint) -> str:
    return (
        f"{endpoint.label} server {endpoint.host}, port {endpoint.port}, "
        f"security {endpoint.security_label}, normal password"
    )


def client_guides(setup: ClientSetup) -> tuple[ClientGuide, ...]:
    """Step-by-step settings for Outlook, Thunderbird, Apple Mail / iOS and Android."""
    incoming = setup.incoming[0] if setup.incoming else None
    outgoing = setup.outgoing
    user = setup.username
    servers = [_server_line(e) for e in (*setup.incoming, *([outgoing] if outgoing else []))]
    if incoming is None:
        return ()
    kind = incoming.label
    send = (
        f"Outgoing (SMTP): {outgoing.host}, port {outgoing.port}, {outgoing.security_label}; "
        "it needs the same user name and password."
        if outgoing
        else "This mailbox may not send mail: leave the outgoing server out."
    )
    return (
        ClientGuide(
            "Outlook",
            (
                "File > Add account; type your mail address, then open Advanced options and "
                "tick “Let me set up my account manually”.",
                f"Choose {kind}.",
                f"Incoming: {incoming.host}, port {incoming.port}, encryption "
                f"{'SSL/TLS' if incoming.security == 'SSL' else 'STARTTLS'}.",
                send,
                f"User name: {user}. Type the mailbox password and click Connect.",
            ),
        ),
        ClientGuide(
            "Thunderbird",
            (
                "Account settings > Account actions > Add mail account.",
                "Type your name, mail address and mailbox password and click Continue: "
                "Thunderbird finds these settings itself.",
                f"If it asks, pick {kind}; otherwise choose Configure manually and use: "
                + "; ".join(servers)
                + ".",
                f"User name: {user}.",
            ),
        ),
        ClientGuide(
            "iPhone, iPad and Mac (Apple Mail)",
            (
                "Easiest: on the device, download the configuration profile (the button on this "
                "page), then open "
                "Settings > Profile Downloaded > Install, and type the mailbox password.",
                "By hand: Settings > Mail > Accounts > Add Account > Other > Add Mail Account.",
                f"Choose {kind}; Incoming mail server: host {incoming.host}, user name {user}.",
                send,
                "SSL stays on; the ports above go in the Advanced settings of each server.",
            ),
        ),
        ClientGuide(
            "Android (Gmail app and others)",
            (
                "Add account > Other (or Personal (IMAP/POP)); type your mail address and "
                "tap Manual setup.",
                f"Choose {kind}; Server {incoming.host}, port {incoming.port}, security "
                f"{'SSL/TLS' if incoming.security == 'SSL' else 'STARTTLS'}; user name {user}.",
                send,
            ),
        ),
    )
