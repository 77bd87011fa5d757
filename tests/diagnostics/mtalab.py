"""Real bounces from Postfix and OpenSMTPD, made to fail for known causes.

The lab runs, all on loopback:

* a *receiving* Postfix (the machine's own Postfix binaries, a config directory of our own)
  that hosts ``dest.test`` with one mailbox (``bob``), refuses to relay for clients that did
  not log in, takes messages of at most 20 000 bytes and gives ``bob`` a mailbox of the same
  size, offers no STARTTLS; it listens on two ports (the second is the one senders are told
  to reach only over TLS);
* a *sending* Postfix that relays to it, keeps each message for one attempt only
  (``maximal_queue_lifetime = 0``: a temporary failure bounces at once) and receives the
  bounces for ``sender.test`` in a mailbox file;
* OpenSMTPD 6.8 from Debian 12, in an mmdebstrap chroot (the way ``shared/dovecot24-lab.md``
  builds one), relaying to the same receiver with a queue lifetime of seconds;
* dnsmasq on 127.0.5.3, port 53, as the only DNS server of both senders (the chroot's
  ``/etc/resolv.conf`` and the sending Postfix's chrooted ``smtp`` client read it): it knows
  ``nomx.test`` (a TXT record, no MX, no address) and says NXDOMAIN for every other ``.test``
  name;
* a socket that accepts connections and never answers (the destination of ``never.test``).

Each sample is labelled by construction (the cause we set up) and kept under
``tests/diagnostics/mtalab/`` with ``labels.jsonl``; ``test_mtalab.py`` checks that every kept
sample is classified right and regenerates some of them.

Run ``python -m tests.diagnostics.mtalab`` (as root) to rewrite the corpus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).with_name("mtalab")
BASE = Path(os.environ.get("MTALAB_BASE", "/var/tmp/bouncelab"))
OPENSMTPD_ROOT = BASE / "opensmtpd"
MIRROR = "http://deb.debian.org/debian"
DNS_ADDRESS = "127.0.5.3"
SOURCE_POSTFIX = "Postfix 3.7 (Debian 12)"
SOURCE_OPENSMTPD = "OpenSMTPD 6.8.0p2 (Debian 12) in a chroot"
#: Largest message (and mailbox) the receiving Postfix takes.
LIMIT = 20_000


class LabError(RuntimeError):
    pass


def available() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the MTA lab needs root (Postfix instances, chroot, DNS on port 53)"
    for tool in ("postfix", "postconf", "dnsmasq"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed"
    if not (OPENSMTPD_ROOT / "usr/sbin/smtpd").exists() and shutil.which("mmdebstrap") is None:
        return "no OpenSMTPD chroot and no mmdebstrap to build one"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise LabError(f"nothing listens on 127.0.0.1:{port}")


def _run(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(args[:4])} failed ({done.returncode}): "
                       f"{done.stderr[-1500:]}{done.stdout[-500:]}")
    return done


# --------------------------------------------------------------------------------------
# DNS and the silent destination
# --------------------------------------------------------------------------------------


@contextmanager
def local_dns(folder: Path) -> Iterator[None]:
    """dnsmasq on 127.0.5.3:53 answering only for ``.test``."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "dnsmasq.conf"
    conf.write_text("\n".join([
        "port=53", f"listen-address={DNS_ADDRESS}", "bind-interfaces", "no-resolv",
        "no-hosts", "no-poll", "local=/test/", 'txt-record=nomx.test,"v=spf1 -all"',
        f"pid-file={folder / 'dnsmasq.pid'}", "user=root", "",
    ]))
    proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"dnsmasq stopped: {proc.stderr.read().decode()[-500:]}"
                               if proc.stderr else "dnsmasq stopped")
            with socket.socket() as probe:
                if probe.connect_ex((DNS_ADDRESS, 53)) == 0:
                    break
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a dead destination)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with suppress(OSError):
                conn, _ = server.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


# --------------------------------------------------------------------------------------
# Postfix instances
# --------------------------------------------------------------------------------------

_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       {chroot}       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class Postfix:
    """One Postfix instance with a configuration directory of its own."""

    folder: Path
    main: dict[str, str]
    listen: tuple[int, ...] = ()
    chroot_smtp: bool = False
    maps: dict[str, str] = field(default_factory=dict)

    @property
    def etc(self) -> Path:
        return self.folder / "etc"

    def write(self) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.folder / "queue").mkdir(exist_ok=True)
        (self.folder / "mail").mkdir(exist_ok=True)
        os.chown(self.folder / "mail", 65534, 65534)
        base = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.folder / "queue"),
            "data_directory": str(self.folder / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "maillog_file": str(self.folder / "postfix.log"),
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "mydestination": "",
            "biff": "no",
            "virtual_mailbox_base": str(self.folder / "mail"),
            "virtual_uid_maps": "static:65534",
            "virtual_gid_maps": "static:65534",
            "virtual_minimum_uid": "100",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "3s",
            "smtp_helo_timeout": "3s",
            "delay_warning_time": "0",
            "smtputf8_enable": "no",
        }
        lines = [f"{k} = {v}" for k, v in {**base, **self.main}.items()]
        (self.etc / "main.cf").write_text("\n".join(lines) + "\n")
        master = _MASTER_CF.format(chroot="y" if self.chroot_smtp else "n")
        for port in self.listen:
            master = f"127.0.0.1:{port} inet n - n - - smtpd\n" + master
        (self.etc / "master.cf").write_text(master)
        for name, text in self.maps.items():
            (self.etc / name).write_text(text)
        if self.chroot_smtp:
            # A chrooted smtp client reads the resolver configuration under the queue.
            queue_etc = self.folder / "queue" / "etc"
            queue_etc.mkdir(parents=True, exist_ok=True)
            (queue_etc / "resolv.conf").write_text(f"nameserver {DNS_ADDRESS}\n")
            for name in ("services", "hosts", "host.conf", "nsswitch.conf", "localtime"):
                source = Path("/etc") / name
                if source.exists():
                    shutil.copy(source, queue_etc / name)

    def start(self) -> None:
        _run("postfix", "-c", str(self.etc), "check")
        _run("postfix", "-c", str(self.etc), "start")
        for port in self.listen:
            wait_port(port)

    def stop(self) -> None:
        with suppress(LabError, subprocess.TimeoutExpired):
            _run("postfix", "-c", str(self.etc), "stop", timeout=30)

    def flush(self) -> None:
        with suppress(LabError):
            _run("postfix", "-c", str(self.etc), "flush")

    def sendmail(self, sender: str, recipient: str, message: str) -> None:
        _run("sendmail", "-C", str(self.etc), "-f", sender, recipient, stdin=message)

    def log(self) -> str:
        path = self.folder / "postfix.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""


def message(subject: str, size: int = 0) -> str:
    body = "hello from the bounce lab\n"
    if size:
        body += ("x" * 70 + "\n") * (size // 71 + 1)
    return (f"From: alice@sender.test\nTo: someone\nSubject: {subject}\n"
            f"Message-ID: <{subject}@sender.test>\n\n{body}")


def mbox_messages(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text("utf-8", "replace")
    parts = re.split(r"(?m)^From \S+ +\w{3} \w{3} [ \d]\d [\d:]{8} \d{4}\n", text)
    return [p for p in parts if p.strip()]


# --------------------------------------------------------------------------------------
# OpenSMTPD in its chroot
# --------------------------------------------------------------------------------------


def ensure_opensmtpd_chroot() -> Path:
    if not (OPENSMTPD_ROOT / "usr/sbin/smtpd").exists():
        OPENSMTPD_ROOT.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=opensmtpd", "bookworm",
             str(OPENSMTPD_ROOT), MIRROR], capture_output=True, text=True, timeout=900,
            check=False)
        if done.returncode != 0:
            raise LabError(f"mmdebstrap failed: {done.stderr[-2000:]}")
    return OPENSMTPD_ROOT


@dataclass
class OpenSmtpd:
    port: int
    relay_port: int
    tls_port: int
    never_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def spool(self) -> Path:
        return OPENSMTPD_ROOT / "var/mail/root"

    def write(self) -> None:
        root = OPENSMTPD_ROOT
        (root / "etc/resolv.conf").write_text(f"nameserver {DNS_ADDRESS}\n")
        (root / "etc/mailname").write_text("opensmtpd.lab.test\n")
        relay = f"smtp://127.0.0.1:{self.relay_port}"
        (root / "etc/smtpd.conf").write_text(f"""\
# bounce lab: relays to the lab's receiving Postfix; mail for root stays here
queue ttl 12s
bounce warn-interval 1s
table aliases file:/etc/aliases
listen on 127.0.0.1 port {self.port}
action "local" mbox alias <aliases>
action "receiver" relay host {relay}
action "tls-only" relay host smtp+tls://127.0.0.1:{self.tls_port}
action "dead" relay host smtp://127.0.0.1:{self.never_port}
action "dns" relay
match from local for domain "dest.test" action "receiver"
match from local for domain "elsewhere.test" action "receiver"
match from local for domain "tls.test" action "tls-only"
match from local for domain "never.test" action "dead"
match from local for domain "nomx.test" action "dns"
match for local action "local"
""")
        for old in (root / "var/spool/smtpd").glob("*/*"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        if self.spool.exists():
            self.spool.unlink()

    def start(self) -> None:
        self.write()
        check = subprocess.run(["chroot", str(OPENSMTPD_ROOT), "smtpd", "-n", "-f",
                                "/etc/smtpd.conf"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LabError(f"smtpd.conf refused: {check.stderr}")
        self.proc = subprocess.Popen(
            ["chroot", str(OPENSMTPD_ROOT), "smtpd", "-d", "-f", "/etc/smtpd.conf"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def sendmail(self, recipient: str, text: str) -> None:
        _run("chroot", str(OPENSMTPD_ROOT), "sendmail", "-f", "root", recipient, stdin=text)


# --------------------------------------------------------------------------------------
# The whole lab
# --------------------------------------------------------------------------------------


@dataclass
class Lab:
    folder: Path
    receiver: Postfix
    sender: Postfix
    opensmtpd: OpenSmtpd | None
    receiver_port: int
    tls_port: int

    def session(self, *commands: str, port: int | None = None) -> str:
        """Client side of an SMTP session with the receiving Postfix: every reply, in order."""
        client = smtplib.SMTP("127.0.0.1", port or self.receiver_port, timeout=10)
        client.ehlo("client.example.test")
        lines = []
        for command in commands:
            code, text = client.docmd(command)
            lines.append(f">>> {command}")
            lines.append(f"<<< {code} {text.decode('utf-8', 'replace')}")
        with suppress(smtplib.SMTPException, OSError):
            client.quit()
        return "\n".join(lines) + "\n"

    def bounce_for(self, subject: str, spool: Path, timeout: float = 40.0,
                   wanted: Callable[[str], bool] = lambda text: True) -> str:
        """Wait for the (first ``wanted``) bounce of the message with ``subject`` in ``spool``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in mbox_messages(spool):
                if (f"Subject: {subject}" in text or f"<{subject}@" in text) and wanted(text):
                    return text
            self.sender.flush()
            time.sleep(0.3)
        raise LabError(f"no bounce for {subject} in {spool}:\n{self.sender.log()[-3000:]}")


@contextmanager
def lab(folder: Path, with_opensmtpd: bool = True) -> Iterator[Lab]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    receiver_port, tls_port, sender_port = free_port(), free_port(), free_port()
    receiver = Postfix(folder / "receiver", listen=(receiver_port, tls_port), main={
        "myhostname": "mx.dest.test",
        "mydomain": "dest.test",
        "mynetworks": "127.0.0.2/32",
        "virtual_mailbox_domains": "dest.test",
        "virtual_mailbox_maps": f"texthash:{folder / 'receiver/etc/vmailbox'}",
        "virtual_mailbox_limit": str(LIMIT),
        "message_size_limit": str(LIMIT),
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "transport_maps": f"texthash:{folder / 'receiver/etc/transport'}",
        "maximal_queue_lifetime": "0",
        "bounce_queue_lifetime": "0",
    }, maps={
        "vmailbox": "bob@dest.test bob\n",
        "transport": f"sender.test smtp:[127.0.0.1]:{sender_port}\n",
    })
    receiver.write()
    # bob's mailbox is nearly at its limit: one more message no longer fits.
    mailbox = receiver.folder / "mail" / "bob"
    mailbox.write_text("From lab Thu Jan  1 00:00:00 2026\nSubject: filler\n\n"
                       + "y" * (LIMIT - 2_000) + "\n\n")
    os.chown(mailbox, 65534, 65534)
    with silent_server() as never_port, local_dns(folder / "dns"):
        sender = Postfix(folder / "sender", listen=(sender_port,), chroot_smtp=True, main={
            "myhostname": "mail.sender.test",
            "mydomain": "sender.test",
            "myorigin": "sender.test",
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": "sender.test",
            "virtual_mailbox_maps": f"texthash:{folder / 'sender/etc/vmailbox'}",
            "transport_maps": f"texthash:{folder / 'sender/etc/transport'}",
            "smtp_tls_policy_maps": f"texthash:{folder / 'sender/etc/tls_policy'}",
            "maximal_queue_lifetime": "0",
            "bounce_queue_lifetime": "0",
            "message_size_limit": str(LIMIT * 5),
            "virtual_mailbox_limit": str(LIMIT * 50),
        }, maps={
            "vmailbox": "alice@sender.test alice\n",
            "transport": "\n".join([
                f"dest.test smtp:[127.0.0.1]:{receiver_port}",
                f"elsewhere.test smtp:[127.0.0.1]:{receiver_port}",
                f"tls.test smtp:[127.0.0.1]:{tls_port}",
                f"never.test smtp:[127.0.0.1]:{never_port}",
            ]) + "\n",
            "tls_policy": f"[127.0.0.1]:{tls_port} encrypt\n",
        })
        sender.write()
        opensmtpd = None
        try:
            receiver.start()
            sender.start()
            if with_opensmtpd:
                ensure_opensmtpd_chroot()
                opensmtpd = OpenSmtpd(free_port(), receiver_port, tls_port, never_port)
                opensmtpd.start()
            yield Lab(folder, receiver, sender, opensmtpd, receiver_port, tls_port)
        finally:
            if opensmtpd is not None:
                opensmtpd.stop()
            sender.stop()
            receiver.stop()


# --------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------

#: Recipient and size per cause, the same for both sending MTAs, with the reason and
#: family the notice must be read as.
CAUSES: dict[str, tuple[str, int, str, str]] = {
    # cause: (recipient, message size, expected reason, expected family)
    "unknown-user": ("nobody-here@dest.test", 0, "userunknown", "user_unknown"),
    "mailbox-full": ("bob@dest.test", 5_000, "mailboxfull", "quota_full"),
    "relay-denied": ("carol@elsewhere.test", 0, "norelaying", "relay_denied"),
    "too-big": ("bob@dest.test", LIMIT * 2, "mesgtoobig", "size_exceeded"),
    "domain-without-mx": ("dan@nomx.test", 0, "hostunknown", "domain_unknown"),
    "tls-required": ("erin@tls.test", 0, "failedstarttls", "starttls_required"),
    "delivery-expired": ("frank@never.test", 0, "expired", "delivery_timeout"),
}

#: Where a sending MTA words a cause so that only another reason can be read from its
#: notice: (reason, family, why).
OPENSMTPD_READS_AS: dict[str, tuple[str, str, str]] = {
    "tls-required": ("networkerror", "delivery_timeout",
                     "OpenSMTPD reports a peer without STARTTLS only as 'Network error on "
                     "destination MXs'"),
    "domain-without-mx": ("notaccept", "domain_unknown",
                          "OpenSMTPD says 'No MX found for domain' (Sisimai: notaccept)"),
}

#: SMTP sessions with the receiving Postfix: (commands, expected reason, family).
SESSIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "relay-denied-then-data": (
        ("MAIL FROM:<ann@client.example.test>", "RCPT TO:<bob@elsewhere.test>", "DATA"),
        "norelaying", "relay_denied"),
    "unknown-user-then-data": (
        ("MAIL FROM:<ann@client.example.test>", "RCPT TO:<nobody-here@dest.test>", "DATA"),
        "userunknown", "user_unknown"),
    "data-without-rcpt": (
        ("MAIL FROM:<ann@client.example.test>", "DATA"), "syntaxerror", "rcpt_before_data"),
    "too-big-declared": (
        (f"MAIL FROM:<ann@client.example.test> SIZE={LIMIT * 10}",), "mesgtoobig",
        "size_exceeded"),
}


@dataclass(frozen=True)
class Sample:
    name: str
    file: str
    reason: str
    family: str
    source: str
    make: Callable[[Lab], str]
    note: str = ""


def _postfix_bounce(cause: str) -> Callable[[Lab], str]:
    recipient, size, _, _ = CAUSES[cause]

    def make(lab: Lab) -> str:
        subject = f"postfix-{cause}-{time.monotonic_ns()}"
        lab.sender.sendmail("alice@sender.test", recipient, message(subject, size))
        spool = lab.sender.folder / "mail" / "alice"
        if cause == "mailbox-full":
            # The receiver accepts, then its delivery agent finds the mailbox full and
            # bounces back to sender.test.
            return lab.bounce_for(subject, spool, timeout=60)
        return lab.bounce_for(subject, spool)
    return make


def _opensmtpd_bounce(cause: str) -> Callable[[Lab], str]:
    recipient, size, _, _ = CAUSES[cause]

    def make(lab: Lab) -> str:
        if lab.opensmtpd is None:
            raise LabError("OpenSMTPD is not running in this lab")
        subject = f"opensmtpd-{cause}-{time.monotonic_ns()}"
        lab.opensmtpd.sendmail(recipient, message(subject, size).replace(
            "alice@sender.test", "root"))
        if cause == "mailbox-full":
            raise LabError("the receiving Postfix, not OpenSMTPD, bounces a full mailbox")
        # OpenSMTPD keeps a temporary failure queued: its first "delayed" notice names
        # the error; after the queue lifetime it only says "Envelope expired".
        expired = "Envelope expired"
        if cause == "delivery-expired":
            return lab.bounce_for(subject, lab.opensmtpd.spool, 60, lambda t: expired in t)
        return lab.bounce_for(subject, lab.opensmtpd.spool, 60, lambda t: expired not in t)
    return make


def _session(name: str) -> Callable[[Lab], str]:
    commands = SESSIONS[name][0]
    return lambda lab: lab.session(*commands)


#: SMTP sessions with OpenSMTPD as the receiving server: (commands, reason, family, note).
OPENSMTPD_SESSIONS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "unknown-user-then-data": (
        ("MAIL FROM:<ann@client.example.test>", "RCPT TO:<nobody-here@localhost>", "DATA"),
        "userunknown", "user_unknown", ""),
    "relay-denied-then-data": (
        ("MAIL FROM:<ann@client.example.test>", "RCPT TO:<bob@nowhere.example>", "DATA"),
        "userunknown", "user_unknown",
        "OpenSMTPD refuses a domain it does not relay for with the same '550 Invalid "
        "recipient' as an unknown user"),
    "data-without-rcpt": (
        ("MAIL FROM:<ann@client.example.test>", "DATA"), "syntaxerror", "rcpt_before_data", ""),
}


def _opensmtpd_session(name: str) -> Callable[[Lab], str]:
    commands = OPENSMTPD_SESSIONS[name][0]

    def make(lab: Lab) -> str:
        if lab.opensmtpd is None:
            raise LabError("OpenSMTPD is not running in this lab")
        return lab.session(*commands, port=lab.opensmtpd.port)
    return make


def samples() -> list[Sample]:
    out = []
    for cause, (_, _, reason, family) in CAUSES.items():
        out.append(Sample(f"postfix-{cause}", f"postfix-{cause}.eml", reason, family,
                          SOURCE_POSTFIX, _postfix_bounce(cause)))
    for cause, (_, _, reason, family) in CAUSES.items():
        if cause == "mailbox-full":
            continue
        reason, family, note = OPENSMTPD_READS_AS.get(cause, (reason, family, ""))
        out.append(Sample(f"opensmtpd-{cause}", f"opensmtpd-{cause}.eml", reason, family,
                          SOURCE_OPENSMTPD, _opensmtpd_bounce(cause), note))
    for name, (_, reason, family) in SESSIONS.items():
        out.append(Sample(f"postfix-smtpd-{name}", f"postfix-smtpd-{name}.txt", reason,
                          family, SOURCE_POSTFIX + " smtpd, client side", _session(name)))
    for name, (_, reason, family, note) in OPENSMTPD_SESSIONS.items():
        out.append(Sample(f"opensmtpd-smtpd-{name}", f"opensmtpd-smtpd-{name}.txt", reason,
                          family, SOURCE_OPENSMTPD + ", client side", _opensmtpd_session(name),
                          note))
    return out


def normalise_sample(text: str) -> str:
    """Drop what changes from run to run (dates, queue ids, ports, nonces)."""
    text = re.sub(r"(?m)^(Date|Arrival-Date|Last-Attempt-Date|X-Postfix-Queue-ID|"
                  r"Received|Message-I[dD]|Content-Type|Return-Path)\b.*(\n[ \t].*)*", r"\1:",
                  text)
    text = re.sub(r"\b[0-9A-F]{8,12}\b", "QID", text)
    text = re.sub(r"\b[0-9a-f]{16}\b", "HEXID", text)
    text = re.sub(r"(127\.0\.0\.1\]?:?)\d{3,5}", r"\1PORT", text)
    text = re.sub(r"\[127\.0\.0\.1\]:\d+", "[127.0.0.1]:PORT", text)
    text = re.sub(r"-\d{15,}", "-N", text)
    text = re.sub(r"boundary=\S+|^--\S+$", "BOUNDARY", text, flags=re.M)
    return text


def write_corpus(folder: Path = BASE / "mtalab-run", names: set[str] | None = None) -> None:
    CORPUS.mkdir(exist_ok=True)
    chosen = [s for s in samples() if names is None or s.name in names]
    labels = {}
    labels_path = CORPUS / "labels.jsonl"
    if labels_path.exists():
        for line in labels_path.read_text("utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                labels[item["sample"]] = item
    with lab(folder) as running:
        for sample in chosen:
            text = sample.make(running)
            (CORPUS / sample.file).write_text(text)
            labels[sample.name] = {"file": sample.file, "sample": sample.name,
                                   "reason": sample.reason, "family": sample.family,
                                   "source": sample.source}
            if sample.note:
                labels[sample.name]["note"] = sample.note
    order = [s.name for s in samples()]
    labels_path.write_text("".join(json.dumps(labels[n]) + "\n" for n in order if n in labels))


if __name__ == "__main__":
    import sys

    write_corpus(names=set(sys.argv[1:]) or None)
