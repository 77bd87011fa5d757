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

    @property
    def rendered(self) -> bool:
        return self.snapshot is not None


_ID_MAX = 2**31 - 1
_C = Check

TABLE: tuple[Setting, ...] = (
    # In the order the settings page shows them.
    Setting("imap_host", str, "mail.example.net", "Host name mail clients use for IMAP",
            _C.CLIENT_HOST),
    Setting("pop3_host", str, "mail.example.net", "Host name mail clients use for POP3",
            _C.CLIENT_HOST),
    Setting("smtp_host", str, "mail.example.net",
            "Host name mail clients use for sending (submission)", _C.CLIENT_HOST),
    Setting("imap_port", int, 993, "IMAP port told to clients (993 = TLS)", _C.PORT),
    Setting("pop3_port", int, 995, "POP3 port told to clients (995 = TLS)", _C.PORT),
    Setting("submission_port", int, 587, "Submission port told to clients", _C.PORT),
    Setting("password_scheme", str, "SHA512-CRYPT", "Hash scheme for new mailbox passwords",
            _C.CHOICE, choices=STORAGE_SCHEMES),
    Setting("min_password_length", int, 10, "Shortest mailbox password accepted", _C.NUMBER,
            low=8, high=128),
    Setting("stack_mode", str, "files", "How the mail servers read the data", _C.CHOICE,
            snapshot="mode", choices=("files", "sql")),
    Setting("dovecot_version", str, "2.3", "Dovecot config syntax", _C.CHOICE,
            snapshot="dovecot_version", choices=("2.3", "2.4", "auto")),
    Setting("config_output_dir", str, "/etc/mailadmin/stack",
            "Where generated configuration is written", _C.CONFIG_DIR, snapshot="config_dir"),
    Setting("mail_root", str, "/var/vmail", "Where the mail servers keep mailboxes", _C.PATH,
            snapshot="mail_root"),
    Setting("vmail_uid", int, 5000, "User id owning the mail files", _C.NUMBER,
            snapshot="vmail_uid", high=_ID_MAX),
    Setting("vmail_gid", int, 5000, "Group id owning the mail files", _C.NUMBER,
            snapshot="vmail_gid", high=_ID_MAX),
    Setting("apply_automatically", bool, False, "Apply the configuration after each change",
            _C.BOOL),
    Setting("mail_hostname", str, "mail.example.net", "The mail servers' own host name",
            _C.MAIL_HOST, snapshot="hostname"),
    Setting("postmaster_address", str, "postmaster@example.net",
            "Who receives the mail servers' reports", _C.ADDRESS, snapshot="postmaster_address"),
    # Dovecot's sockets live in <run_dir>/dovecot/...; a unix socket path has 108 bytes.
    Setting("run_dir", str, "/run/mailadmin", "Sockets and pid files of the mail servers",
            _C.PATH, snapshot="run_dir", max_len=60),
    Setting("state_dir", str, "/var/lib/mailadmin", "State of the mail servers", _C.PATH,
            snapshot="state_dir"),
    Setting("queue_dir", str, "/var/spool/mailadmin-postfix", "Postfix queue", _C.PATH,
            snapshot="queue_dir"),
    Setting("log_dir", str, None, "Log folder of the mail servers (empty: syslog)", _C.PATH,
            snapshot="log_dir", optional=True),
    Setting("listen_address", str, "0.0.0.0", "Address the mail servers listen on",  # noqa: S104
            _C.LISTEN, snapshot="listen_address"),
    Setting("imap_listen_port", int, 143, "IMAP listening port", _C.PORT,
            snapshot="ports.imap"),
    Setting("pop3_listen_port", int, 110, "POP3 listening port", _C.PORT,
            snapshot="ports.pop3"),
    Setting("submission_listen_port", int, 587, "Submission listening port", _C.PORT,
            snapshot="ports.submission"),
    Setting("smtp_listen_port", int, 25, "SMTP (incoming mail) listening port", _C.PORT,
            snapshot="ports.smtp"),
    Setting("lmtp_listen_port", int, 24, "LMTP listening port (loopback)", _C.PORT,
            snapshot="ports.lmtp"),
    Setting("reinject_listen_port", int, 10026, "Loopback port for Sieve replies", _C.PORT,
            snapshot="ports.reinject"),
    Setting("message_size_limit", int, 50 * 1024 * 1024, "Largest message accepted (e.g. 50M)",
            _C.SIZE, snapshot="message_size_limit"),
    Setting("tls_cert_file", str, None, "TLS certificate (PEM; empty: no TLS)", _C.PATH,
            snapshot="tls_cert_file", optional=True),
    Setting("tls_key_file", str, None, "TLS private key (PEM)", _C.PATH,
            snapshot="tls_key_file", optional=True),
    Setting("imap_starttls_port", int, 143, "IMAP STARTTLS port told to clients", _C.PORT),
    Setting("pop3_starttls_port", int, 110, "POP3 STARTTLS port told to clients", _C.PORT),
    Setting("smtps_port", int, 465, "SMTP over TLS port told to clients", _C.PORT),
    Setting("webmail_url", str, None, "Webmail address (empty: none)", _C.WEB_URL,
            optional=True),
    Setting("domain_verification", str, "none",
            "How customers prove a new domain: none, dns (TXT record or MX) or admin (approval)",
            _C.CHOICE, choices=("none", "dns", "admin")),
    Setting("dns_resolvers", str, "",
            "DNS servers for domain verification, host:port (empty: the system's)",
            _C.RESOLVERS),
    Setting("domain_deny_list", str, None,
            "Domains only the server admin may add, with their subdomains (gmx.* = any "
            "top-level domain; empty = the shipped list)", _C.DENY_LIST, optional=True),
    Setting("mail_server_addresses", str, "",
            "The mail server's public IP addresses, for SPF and reverse DNS (PTR) checks",
            _C.IP_ADDRESSES, max_len=1024),
    Setting("dkim_key_dir", str, "/etc/mailadmin/dkim",
            "Where DKIM private keys are kept (readable only by OpenDKIM)", _C.PATH,
            snapshot="dkim_key_dir"),
    Setting("dkim_milter_port", int, 8891, "Loopback port of the OpenDKIM signer (milter)",
            _C.PORT, snapshot="dkim_milter_port"),
)

SETTINGS: dict[str, Setting] = {s.name: s for s in TABLE}
#: The default of every setting (None: not set), what a new settings row starts with.
DEFAULTS: dict[str, t.Any] = {s.name: s.default for s in TABLE}
#: Settings that reach the generated files: changing one makes a configuration change pending.
RENDERED: frozenset[str] = frozenset(s.name for s in TABLE if s.rendered)
