"""The server settings table: every server setting once.

One row per setting says its column (the name), its type, its default, which rule checks a
value (`Check`), whether and where it reaches the render snapshot (`snapshot`), and what it
means. Everything else is generated from it:

- the column defaults of `models.ServerSettings` (`DEFAULTS`);
- the setting specs of `services.server_settings` (validators: `Check` is read there, with
  the renderer's own checks, so a value saved is a value the renderer accepts);
- the mapping of a settings row to `mailstack.snapshot.StackSettings`;
- the settings whose change alters the generated configuration (`RENDERED`, read by
  `services.changes`).

The models read their defaults from here, so this module imports no models, services or
mailstack code.
Migrations are history and keep their own literal defaults (a test compares them).
"""

from __future__ import annotations

import enum
import typing as t
from dataclasses import dataclass

from .hashing import STORAGE_SCHEMES


class Check(enum.StrEnum):
    """The rule a value must pass; `services.server_settings` holds one validator per rule."""

    #: A host name mail programs are told: a domain name, "localhost" or an IPv4 address.
    CLIENT_HOST = "client_host"
    #: The mail servers' own name, as the renderer accepts it (a domain name).
    MAIL_HOST = "mail_host"
    #: An absolute path the renderer accepts (`max_len` characters at most).
    PATH = "path"
    #: The config folder: releases go to ``<it>/releases/<64-hex checksum>``, also a path.
    CONFIG_DIR = "config_dir"
    PORT = "port"
    #: A port, or 0 (entered as 0, "off" or nothing): the service is not offered on it.
    PORT_OR_OFF = "port_or_off"
    #: A whole number from `low` to `high`.
    NUMBER = "number"
    #: One of `choices`, matched without regard to case.
    CHOICE = "choice"
    BOOL = "bool"
    #: An address the renderer writes into the Postfix configuration.
    ADDRESS = "address"
    #: An IPv4 address the servers listen on.
    LISTEN = "listen"
    #: A size such as 50M, at least 1M.
    SIZE = "size"
    #: An http(s) address shown to users.
    WEB_URL = "web_url"
    #: DNS servers as ``host:port`` entries (empty: the system's resolvers).
    RESOLVERS = "resolvers"
    #: The domain deny list (None: the shipped list).
    DENY_LIST = "deny_list"
    #: Roles (admin, reseller, customer, mailbox), space or comma separated; empty for none.
    ROLES = "roles"
    #: IPv4/IPv6 addresses, separated by spaces or commas (empty: none).
    IP_ADDRESSES = "ip_addresses"


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: t.Any
    description: str
    check: Check
    #: Where the value goes in `StackSettings` ("ports.imap": a field of `StackPorts`);
    #: None: not rendered, so changing it leaves the mail servers' configuration as it is.
    snapshot: str | None = None
    #: None is a valid value ("not set"); an empty text means None.
    optional: bool = False
    max_len: int = 200
    low: int = 1
    high: int = 65535
    choices: tuple[str, ...] = ()
    #: The section of the settings page (one of `GROUPS`).
    group: str = "Behaviour"

    @property
    def rendered(self) -> bool:
        return self.snapshot is not None


_ID_MAX = 2**31 - 1
_C = Check

#: The settings page's sections, in order.
GROUPS: tuple[str, ...] = (
    _CLIENT := "Client-facing names and ports",
    _STORAGE := "Mail storage and folders",
    _LISTENING := "Listening",
    _TLS := "TLS",
    _BEHAVIOUR := "Behaviour",
)

TABLE: tuple[Setting, ...] = (
    # In the order the settings page shows them, group by group (`GROUPS`).
    Setting("imap_host", str, "mail.example.net", "Host name mail clients use for IMAP",
            _C.CLIENT_HOST, group=_CLIENT),
    Setting("pop3_host", str, "mail.example.net", "Host name mail clients use for POP3",
            _C.CLIENT_HOST, group=_CLIENT),
    Setting("smtp_host", str, "mail.example.net",
            "Host name mail clients use for sending (submission)", _C.CLIENT_HOST,
            group=_CLIENT),
    Setting("imap_port", int, 993, "IMAP port told to clients (993 = TLS; 0 = not offered)",
            _C.PORT_OR_OFF, group=_CLIENT),
    Setting("imap_starttls_port", int, 143,
            "IMAP STARTTLS port told to clients (0 = not offered)", _C.PORT_OR_OFF,
            group=_CLIENT),
    Setting("pop3_port", int, 995, "POP3 port told to clients (995 = TLS; 0 = not offered)",
            _C.PORT_OR_OFF, group=_CLIENT),
    Setting("pop3_starttls_port", int, 110,
            "POP3 STARTTLS port told to clients (0 = not offered)", _C.PORT_OR_OFF,
            group=_CLIENT),
    Setting("submission_port", int, 587, "Submission port told to clients (0 = not offered)",
            _C.PORT_OR_OFF, group=_CLIENT),
    Setting("smtps_port", int, 465, "SMTP over TLS port told to clients (0 = not offered)",
            _C.PORT_OR_OFF, group=_CLIENT),
    Setting("webmail_url", str, None, "Webmail address (empty: none)", _C.WEB_URL,
            optional=True, group=_CLIENT),
    Setting("mail_root", str, "/var/vmail", "Where the mail servers keep mailboxes", _C.PATH,
            snapshot="mail_root", group=_STORAGE),
    Setting("vmail_uid", int, 5000, "User id owning the mail files", _C.NUMBER,
            snapshot="vmail_uid", high=_ID_MAX, group=_STORAGE),
    Setting("vmail_gid", int, 5000, "Group id owning the mail files", _C.NUMBER,
            snapshot="vmail_gid", high=_ID_MAX, group=_STORAGE),
    Setting("config_output_dir", str, "/etc/mailadmin/stack",
            "Where generated configuration is written", _C.CONFIG_DIR, snapshot="config_dir",
            group=_STORAGE),
    # Dovecot's sockets live in <run_dir>/dovecot/...; a unix socket path has 108 bytes.
    Setting("run_dir", str, "/run/mailadmin", "Sockets and pid files of the mail servers",
            _C.PATH, snapshot="run_dir", max_len=60, group=_STORAGE),
    Setting("state_dir", str, "/var/lib/mailadmin", "State of the mail servers", _C.PATH,
            snapshot="state_dir", group=_STORAGE),
    Setting("queue_dir", str, "/var/spool/mailadmin-postfix", "Postfix queue", _C.PATH,
            snapshot="queue_dir", group=_STORAGE),
    # A folder by default: Debian 12 has no /var/log/mail.log unless rsyslog is installed,
    # so with syslog the mail log page would depend on the journal.
    Setting("log_dir", str, "/var/log/mailadmin",
            "Log folder of the mail servers (empty: syslog, read from the journal)", _C.PATH,
            snapshot="log_dir", optional=True, group=_STORAGE),
    Setting("mail_hostname", str, "mail.example.net", "The mail servers' own host name",
            _C.MAIL_HOST, snapshot="hostname", group=_LISTENING),
    Setting("listen_address", str, "0.0.0.0", "Address the mail servers listen on",  # noqa: S104
            _C.LISTEN, snapshot="listen_address", group=_LISTENING),
    Setting("imap_listen_port", int, 143, "IMAP listening port (0 = no IMAP listener)",
            _C.PORT_OR_OFF, snapshot="ports.imap", group=_LISTENING),
    Setting("pop3_listen_port", int, 110, "POP3 listening port (0 = no POP3 listener)",
            _C.PORT_OR_OFF, snapshot="ports.pop3", group=_LISTENING),
    Setting("submission_listen_port", int, 587,
            "Submission listening port (0 = no submission listener)", _C.PORT_OR_OFF,
            snapshot="ports.submission", group=_LISTENING),
    Setting("smtp_listen_port", int, 25, "SMTP (incoming mail) listening port", _C.PORT,
            snapshot="ports.smtp", group=_LISTENING),
    Setting("lmtp_listen_port", int, 24, "LMTP listening port (loopback)", _C.PORT,
            snapshot="ports.lmtp", group=_LISTENING),
    Setting("reinject_listen_port", int, 10026, "Loopback port for Sieve replies", _C.PORT,
            snapshot="ports.reinject", group=_LISTENING),
    Setting("tls_cert_file", str, None, "TLS certificate (PEM; empty: no TLS)", _C.PATH,
            snapshot="tls_cert_file", optional=True, group=_TLS),
    Setting("tls_key_file", str, None, "TLS private key (PEM)", _C.PATH,
            snapshot="tls_key_file", optional=True, group=_TLS),
    Setting("stack_mode", str, "files", "How the mail servers read the data", _C.CHOICE,
            snapshot="mode", choices=("files", "sql"), group=_BEHAVIOUR),
    Setting("dovecot_version", str, "2.3", "Dovecot config syntax", _C.CHOICE,
            snapshot="dovecot_version", choices=("2.3", "2.4", "auto"), group=_BEHAVIOUR),
    Setting("apply_automatically", bool, False,
            "Apply the configuration after each change (switched on by the first "
            "successful apply unless set here)", _C.BOOL, group=_BEHAVIOUR),
    Setting("postmaster_address", str, "postmaster@example.net",
            "Who receives the mail servers' reports", _C.ADDRESS, snapshot="postmaster_address",
            group=_BEHAVIOUR),
    Setting("message_size_limit", int, 50 * 1024 * 1024, "Largest message accepted (e.g. 50M)",
            _C.SIZE, snapshot="message_size_limit", group=_BEHAVIOUR),
    Setting("password_scheme", str, "SHA512-CRYPT", "Hash scheme for new mailbox passwords",
            _C.CHOICE, choices=STORAGE_SCHEMES, group=_BEHAVIOUR),
    Setting("min_password_length", int, 10, "Shortest mailbox password accepted", _C.NUMBER,
            low=8, high=128, group=_BEHAVIOUR),
    Setting("domain_verification", str, "none",
            "How customers prove a new domain: none, dns (TXT record or MX) or admin (approval)",
            _C.CHOICE, choices=("none", "dns", "admin"), group=_BEHAVIOUR),
    Setting("dns_resolvers", str, "",
            "DNS servers for domain verification, host:port (empty: the system's)",
            _C.RESOLVERS, group=_BEHAVIOUR),
    Setting("domain_deny_list", str, None,
            "Domains only the server admin may add, with their subdomains (gmx.* = any "
            "top-level domain; empty = the shipped list)", _C.DENY_LIST, optional=True,
            group=_BEHAVIOUR),
    Setting("two_factor_required_roles", str, "",
            "Roles that must use two-factor sign-in, enrolling at their next sign-in "
            "(any of admin, reseller, customer, mailbox; empty = nobody is made to)", _C.ROLES,
            max_len=64, group=_BEHAVIOUR),
    Setting("mail_server_addresses", str, "",
            "The mail server's public IP addresses, for SPF and reverse DNS (PTR) checks",
            _C.IP_ADDRESSES, max_len=1024, group=_LISTENING),
    Setting("dkim_key_dir", str, "/etc/mailadmin/dkim",
            "Where DKIM private keys are kept (readable only by OpenDKIM)", _C.PATH,
            snapshot="dkim_key_dir", group=_STORAGE),
    Setting("dkim_milter_port", int, 8891, "Loopback port of the OpenDKIM signer (milter)",
            _C.PORT, snapshot="dkim_milter_port", group=_LISTENING),
    # Several mail nodes only: each node's Dovecot answers the others' doveadm (domain moves
    # with dsync, usage read-back) on its node address; a single server has no such listener.
    Setting("doveadm_port", int, 12345,
            "doveadm server port between mail nodes (several nodes only)", _C.PORT,
            snapshot="doveadm_port", group=_LISTENING),
)

SETTINGS: dict[str, Setting] = {s.name: s for s in TABLE}
#: The default of every setting (None: not set), what a new settings row starts with.
DEFAULTS: dict[str, t.Any] = {s.name: s.default for s in TABLE}
#: Settings that reach the generated files: changing one makes a configuration change pending.
RENDERED: frozenset[str] = frozenset(s.name for s in TABLE if s.rendered)
#: Settings whose value may be 0 for "not offered" (client-facing and listening ports).
PORTS_OR_OFF: frozenset[str] = frozenset(s.name for s in TABLE if s.check is Check.PORT_OR_OFF)
