"""Live login test: log in to the configured servers as a mailbox, step by step.

For each protocol (SMTP submission with STARTTLS, SMTPS where configured, IMAP, POP3) the test
connects, reads the greeting, starts TLS, authenticates and, for SMTP, gives ``MAIL FROM`` and
``RCPT TO`` to the mailbox itself followed by ``RSET`` (nothing is sent). The transcript shows
every line exchanged with the password masked; the step that failed is diagnosed with
:func:`classify` and :func:`check_account`.

The password is only ever held in memory for the test: it is not stored, not logged, not
returned (the transcript and findings never contain it, in clear or base64). Tests are
rate-limited per mailbox with the sign-in throttle's counters (scope "account", key
``livetest:<address>``). When a server offers no TLS, that is a finding; the password is then
sent in plain text only to a loopback address (the sandbox), never over the network.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from ..errors import RateLimited
from ..models import ServerSettings, utcnow
from ..protocols import Protocol
from ..services import throttle
from ..services.server import get_server_settings
from .account import AccountReport, Principal, check_account, mailbox_in_scope
from .classify import Finding, classify

MASK = "********"
THROTTLE_PREFIX = "livetest:"
#: At most this many tests per mailbox within the window; then tests pause for `lock`.
LIVE_TEST_POLICY = throttle.ThrottlePolicy(
    max_failures_per_account=10, max_failures_per_address=10_000,
    window=dt.timedelta(minutes=15), lock=dt.timedelta(minutes=15))
MAX_LINE = 4096
MAX_REPLY_LINES = 64


@dataclass(frozen=True)
class Target:
    """One server to test: ``protocol`` is submission, smtps, imap or pop3."""

    protocol: str
    host: str
    port: int
    #: "starttls" (plain connect, then STARTTLS/STLS when offered) or "implicit" (TLS at once).
    tls: str


@dataclass
class Step:
    name: str  # connect, greeting, tls, authenticate, mail_from, rcpt_to, rset
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class ProtocolResult:
    target: Target
    steps: list[Step] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    tls: bool = False
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    account: AccountReport | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def as_dict(self) -> dict[str, object]:
        failed = self.failed_step
        return {
            "protocol": self.target.protocol,
            "host": self.target.host,
            "port": self.target.port,
            "tls_mode": self.target.tls,
            "tls": self.tls,
            "ok": self.ok,
            "failed_step": failed.name if failed else None,
            "steps": [s.as_dict() for s in self.steps],
            "notes": list(self.notes),
            "transcript": list(self.transcript),
            "findings": [f.as_dict() for f in self.findings],
            "account": self.account.as_dict() if self.account else None,
        }


@dataclass
class LiveReport:
    address: str
    results: list[ProtocolResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "ok": self.ok,
                "results": [r.as_dict() for r in self.results]}


def targets_from_settings(settings: ServerSettings) -> list[Target]:
    """What mail programs are told: submission with STARTTLS, SMTPS, IMAP and POP3 over TLS.

    A port set to 0 is not offered, so it is not tested either (a test of a port that does
    not answer would fail for nothing); IMAP and POP3 fall back to their STARTTLS port.
    """
    out: list[Target] = []
    if settings.submission_port:
        out.append(Target("submission", settings.smtp_host, settings.submission_port,
                          "starttls"))
    if settings.smtps_port:
        out.append(Target("smtps", settings.smtp_host, settings.smtps_port, "implicit"))
    for name, host, port, starttls_port, plain in (
        ("imap", settings.imap_host, settings.imap_port, settings.imap_starttls_port, 143),
        ("pop3", settings.pop3_host, settings.pop3_port, settings.pop3_starttls_port, 110),
    ):
        chosen = port or starttls_port
        if chosen:
            out.append(Target(name, host, chosen,
                              "starttls" if chosen in (plain, starttls_port) else "implicit"))
    return out


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Failed(Exception):
    def __init__(self, step: str, detail: str, reply: str = "") -> None:
        super().__init__(detail)
        self.step, self.detail, self.reply = step, detail, reply


class _Conn:
    """A line-based connection that records a transcript with secrets masked."""

    def __init__(self, target: Target, secrets: Sequence[str], timeout: float,
                 source: str | None, transcript: list[str]) -> None:
        self.target, self.secrets, self.timeout = target, [s for s in secrets if s], timeout
        self.transcript = transcript
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            (target.host, target.port), timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def wrap(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_hostname=self.target.host)
        self.buf = b""

    def readline(self) -> str:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                break
            chunk = self.sock.recv(4096)
            if not chunk:
                raise _Failed("", "the server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        self.transcript.append("S: " + self.mask(text))
        return text

    def send(self, line: str, shown: str | None = None) -> None:
        self.transcript.append("C: " + self.mask(shown if shown is not None else line))
        self.sock.sendall(line.encode() + b"\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --------------------------------------------------------------------------- SMTP


def _smtp_reply(c: _Conn) -> tuple[int, list[str]]:
    lines: list[str] = []
    while len(lines) < MAX_REPLY_LINES:
        line = c.readline()
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            break
    code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
    return code, lines


def _smtp(c: _Conn, r: ProtocolResult, address: str, password: str,
          context: ssl.SSLContext) -> None:
    code, lines = _smtp_reply(c)
    if code != 220:
        raise _Failed("greeting", "the server did not greet with 220", lines[-1])
    r.steps.append(Step("greeting", True, lines[0]))
    c.send("EHLO mailadmin-login-test")
    code, ehlo = _smtp_reply(c)
    if code != 250:
        raise _Failed("greeting", "EHLO was refused", ehlo[-1])
    if r.target.tls == "implicit":
        r.steps.append(Step("tls", True, "TLS from the first byte"))
    elif any(x[4:].upper().startswith("STARTTLS") for x in ehlo):
        c.send("STARTTLS")
        code, lines = _smtp_reply(c)
        if code != 220:
            raise _Failed("tls", "STARTTLS was refused", lines[-1])
        _start_tls(c, r, context)
        c.send("EHLO mailadmin-login-test")
        code, ehlo = _smtp_reply(c)
    else:
        _no_tls(c, r)
    token = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
    c.secrets.append(token)
    c.send(f"AUTH PLAIN {token}", f"AUTH PLAIN {MASK}")
    code, lines = _smtp_reply(c)
    if code != 235:
        raise _Failed("authenticate", "the server refused the login", lines[-1])
    r.steps.append(Step("authenticate", True, lines[-1]))
    for step, command in (("mail_from", f"MAIL FROM:<{address}>"),
                          ("rcpt_to", f"RCPT TO:<{address}>")):
        c.send(command)
        code, lines = _smtp_reply(c)
        if code != 250:
            raise _Failed(step, f"{command.split(':')[0]} was refused", lines[-1])
        r.steps.append(Step(step, True, lines[-1]))
    c.send("RSET")
    code, lines = _smtp_reply(c)
    r.steps.append(Step("rset", code == 250, lines[-1]))
    c.send("QUIT")


# --------------------------------------------------------------------------- IMAP


def _imap_tagged(c: _Conn, tag: str) -> tuple[str, list[str]]:
    lines: list[str] = []
    while len(lines) < MAX_REPLY_LINES * 4:
        line = c.readline()
        lines.append(line)
        if line.startswith(tag + " "):
            return line[len(tag) + 1:].split(" ", 1)[0].upper(), lines
        if line.startswith("+"):
            return "+", lines
    raise _Failed("", "the server sent no tagged reply")


def _imap(c: _Conn, r: ProtocolResult, address: str, password: str,
          context: ssl.SSLContext) -> None:
    greeting = c.readline()
    if not greeting.upper().startswith("* OK"):
        raise _Failed("greeting", "the server did not greet with * OK", greeting)
    r.steps.append(Step("greeting", True, greeting))
    c.send("a1 CAPABILITY")
    status, caps = _imap_tagged(c, "a1")
    if r.target.tls == "implicit":
        r.steps.append(Step("tls", True, "TLS from the first byte"))
    elif any("STARTTLS" in x.upper() for x in caps):
        c.send("a2 STARTTLS")
        status, lines = _imap_tagged(c, "a2")
        if status != "OK":
            raise _Failed("tls", "STARTTLS was refused", lines[-1])
        _start_tls(c, r, context)
    else:
        _no_tls(c, r)
    token = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
    c.secrets.append(token)
    c.send("a3 AUTHENTICATE PLAIN")
    status, lines = _imap_tagged(c, "a3")
    if status == "+":
        c.send(token, MASK)
        status, lines = _imap_tagged(c, "a3")
    if status != "OK":
        raise _Failed("authenticate", "the server refused the login", lines[-1])
    r.steps.append(Step("authenticate", True, lines[-1]))
    c.send("a4 LOGOUT")


# --------------------------------------------------------------------------- POP3


def _pop3(c: _Conn, r: ProtocolResult, address: str, password: str,
          context: ssl.SSLContext) -> None:
    greeting = c.readline()
    if not greeting.startswith("+OK"):
        raise _Failed("greeting", "the server did not greet with +OK", greeting)
    r.steps.append(Step("greeting", True, greeting))
    c.send("CAPA")
    caps: list[str] = []
    if c.readline().startswith("+OK"):
        while len(caps) < MAX_REPLY_LINES:
            line = c.readline()
            if line == ".":
                break
            caps.append(line)
    if r.target.tls == "implicit":
        r.steps.append(Step("tls", True, "TLS from the first byte"))
    elif any(x.upper().startswith("STLS") for x in caps):
        c.send("STLS")
        line = c.readline()
        if not line.startswith("+OK"):
            raise _Failed("tls", "STLS was refused", line)
        _start_tls(c, r, context)
    else:
        _no_tls(c, r)
    c.send(f"USER {address}")
    line = c.readline()
    if not line.startswith("+OK"):
        raise _Failed("authenticate", "USER was refused", line)
    c.send(f"PASS {password}", f"PASS {MASK}")
    line = c.readline()
    if not line.startswith("+OK"):
        raise _Failed("authenticate", "the server refused the login", line)
    r.steps.append(Step("authenticate", True, line))
    c.send("QUIT")


# --------------------------------------------------------------------------- TLS


def _start_tls(c: _Conn, r: ProtocolResult, context: ssl.SSLContext) -> None:
    try:
        c.wrap(context)
    except ssl.SSLCertVerificationError as exc:
        raise _Failed("tls", f"the server's certificate is not valid: {exc.verify_message}"
                      ) from None
    except (ssl.SSLError, OSError) as exc:
        raise _Failed("tls", f"the TLS handshake failed: {exc}") from None
    r.tls = True
    version = c.sock.version() if isinstance(c.sock, ssl.SSLSocket) else None
    r.steps.append(Step("tls", True, f"TLS started ({version or 'TLS'})"))


def _no_tls(c: _Conn, r: ProtocolResult) -> None:
    note = "no TLS offered: the server does not offer STARTTLS on this port"
    r.notes.append(note)
    if not _is_loopback(c.target.host):
        raise _Failed("tls", note + "; the password is not sent unencrypted over the network")
    r.steps.append(Step("tls", True, note + " (loopback: continuing in plain text)"))


_RUNNERS: dict[str, Callable[[_Conn, ProtocolResult, str, str, ssl.SSLContext], None]] = {
    "submission": _smtp, "smtps": _smtp, "imap": _imap, "pop3": _pop3}
#: The mailbox permission a login to each target needs.
_LOGIN_PROTOCOL = {"submission": Protocol.SMTP, "smtps": Protocol.SMTP, "imap": Protocol.IMAP,
                   "pop3": Protocol.POP3}


def probe(target: Target, address: str, password: str, *, timeout: float = 10.0,
             source: str | None = None, context: ssl.SSLContext | None = None
             ) -> ProtocolResult:
    """Run one protocol's steps; never raises for a server's answer (it is in the result)."""
    r = ProtocolResult(target)
    context = context or ssl.create_default_context()
    conn: _Conn | None = None
    try:
        try:
            conn = _Conn(target, [password], timeout, source, r.transcript)
        except OSError as exc:
            raise _Failed("connect", f"cannot connect to {target.host}:{target.port}: "
                          f"{exc.strerror or exc}") from None
        r.steps.append(Step("connect", True, f"connected to {target.host}:{target.port}"))
        if target.tls == "implicit":
            try:
                conn.wrap(context)
                r.tls = True
            except (ssl.SSLError, OSError) as exc:
                raise _Failed("tls", f"the TLS handshake failed: {exc}") from None
        _RUNNERS[target.protocol](conn, r, address, password, context)
    except _Failed as exc:
        step = exc.step or (r.steps[-1].name if r.steps else "connect")
        detail = exc.detail + (f": {conn.mask(exc.reply) if conn else exc.reply}"
                               if exc.reply else "")
        r.steps.append(Step(step, False, detail))
        if exc.reply:
            r.findings = classify(conn.mask(exc.reply) if conn else exc.reply)
    except (OSError, ValueError) as exc:
        step = "greeting" if len(r.steps) <= 1 else "authenticate"
        r.steps.append(Step(step, False, f"connection failed: {exc}"))
    finally:
        if conn is not None:
            conn.close()
    return r


def run_live_test(session: Session, actor: Principal, address: str, password: str, *,
                  targets: Sequence[Target] | None = None,
                  source: Callable[[], str | None] | None = None,
                  timeout: float = 10.0,
                  context: ssl.SSLContext | None = None,
                  policy: throttle.ThrottlePolicy = LIVE_TEST_POLICY,
                  now: dt.datetime | None = None) -> LiveReport:
    """Test the mailbox's logins (scope-checked, rate-limited) and diagnose what failed.

    ``targets`` overrides the servers from the settings (the sandbox's loopback ports);
    ``source`` gives the local address for each connection (tests use one per connection).
    Raises NotFound for a mailbox outside the actor's scope and RateLimited when the mailbox
    was tested too often; the caller commits (the throttle counter is in the session).
    """
    mailbox = mailbox_in_scope(session, actor, address)
    normal = mailbox.address
    now = now or utcnow()
    keys = {throttle.ACCOUNT: THROTTLE_PREFIX + normal}
    try:
        throttle.ensure_not_locked(session, keys, now)
    except RateLimited as exc:
        minutes = max(1, -(-exc.retry_after_seconds // 60))
        raise RateLimited(
            f"The login of {normal} was tested {policy.max_failures_per_account} times "
            f"recently; try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            retry_after_seconds=exc.retry_after_seconds) from None
    # Every test counts (not only failed ones); this one still runs, the next is refused.
    throttle.record_failure(session, keys, now, policy)
    chosen = list(targets) if targets is not None else targets_from_settings(
        get_server_settings(session))
    results: list[ProtocolResult] = []
    for target in chosen:
        started = time.monotonic()
        r = probe(target, normal, password, timeout=timeout,
                     source=source() if source else None, context=context)
        r.notes.append(f"took {time.monotonic() - started:.2f} s")
        failed = r.failed_step
        if failed is not None and failed.name not in {"connect", "greeting", "tls"}:
            findings = r.findings or classify(failed.detail)
            r.account = check_account(session, actor, findings, address=normal,
                                      protocol=_LOGIN_PROTOCOL[target.protocol])
        results.append(r)
    return LiveReport(normal, results)
