"""The address resolver's answers checked against the real servers' own answers.

For each address the resolver's verdict is compared with what the running Postfix and Dovecot
say: ``postmap -q`` on the applied lookup tables (domains, mailboxes, aliases followed the way
Postfix's cleanup follows them, recipient and SASL access), Postfix's own reply at RCPT TO,
``doveadm user`` (the userdb) and ``doveadm auth test`` per service (the passdbs with the deny
lists).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.services.context import Actor
from mailadmin.services.resolver import Resolution, resolve_address

from .conftest import PASSWORD, Stack, fresh_ip

pytestmark = pytest.mark.mailstack

#: (address, kind) covering a mailbox, a forwarder, the default address in each action, the
#: suspensions and per-protocol switches, and addresses that are not hosted.
CASES = [
    ("alice@example.test", "mailbox"),
    ("noimap@example.test", "mailbox"),
    ("nopop@example.test", "mailbox"),
    ("nosmtp@example.test", "mailbox"),
    ("suspended@example.test", "mailbox"),
    ("noreceive@example.test", "mailbox"),
    ("nosend@example.test", "mailbox"),
    ("small@example.test", "mailbox"),
    ("team@example.test", "forwarder"),
    ("to-noreceive@example.test", "forwarder"),
    ("keeper@example.test", "mailbox_forwarding"),
    ("nobody@example.test", "default_address"),      # reject, no reason given
    ("nobody@reject.test", "default_address"),       # reject with a reason
    ("known@reject.test", "mailbox"),                # exempt from the domain's refusal
    ("nobody@discard.test", "default_address"),      # discard
    ("nobody@deliver.test", "default_address"),      # deliver to catchall@deliver.test
    ("catchall@deliver.test", "mailbox"),
    ("someone@unhosted.test", "not_hosted"),
    ("postmaster@elsewhere.test", "not_hosted"),
]


class Real:
    """The running servers' answers, from the release in force."""

    def __init__(self, stack: Stack) -> None:
        current = Path(stack.settings.config_dir) / "current"
        self.pf = current / "postfix"
        self.conf = current / "dovecot" / "dovecot.conf"
        self.stack = stack

    def postmap(self, table: str, key: str) -> str | None:
        proc = subprocess.run(["postmap", "-c", str(self.pf), "-q", key,
                               f"hash:{self.pf / table}"],
                              capture_output=True, text=True, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stdout.strip() if proc.returncode == 0 else None

    def expand(self, address: str, depth: int = 0) -> list[str]:
        """virtual_alias_maps as Postfix's cleanup applies it, one real lookup per step."""
        found = self.postmap("valias", address)
        if found is None:
            found = self.postmap("valias", "@" + address.rpartition("@")[2])
        if found is None or depth > 20:
            return [address]
        out: list[str] = []
        for target in found.split(","):
            out.extend([target] if target == address else self.expand(target, depth + 1))
        return list(dict.fromkeys(out))

    def rcpt(self, address: str) -> tuple[int, str]:
        s = self.stack.smtp()
        try:
            s.mail("someone@remote.test")
            code, text = s.rcpt(address)
        finally:
            s.quit()
        return code, text.decode()

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["doveadm", "-c", str(self.conf), *args],
                              capture_output=True, text=True, check=False)

    def user(self, address: str) -> dict[str, str] | None:
        proc = self.doveadm("user", address)
        if proc.returncode == 67:
            return None
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return dict(line.split("\t", 1) for line in proc.stdout.splitlines()[1:] if "\t" in line)

    def auth(self, address: str, service: str) -> bool:
        # a fresh client address each time: Dovecot's auth penalty is per remote IP
        proc = self.doveadm("auth", "test", "-x", f"service={service}", "-x",
                            f"rip={fresh_ip()}", address, PASSWORD)
        assert proc.returncode in (0, 77), proc.stdout + proc.stderr
        return proc.returncode == 0


@pytest.fixture(scope="module")
def real(stack: Stack) -> Iterator[Real]:
    stack.reapply()  # the servers run exactly what the database says now
    yield Real(stack)


def resolve(stack: Stack, address: str) -> Resolution:
    with stack.session() as s:
        answer = resolve_address(s, Actor.operator(), address)
        s.rollback()
    return answer


@pytest.mark.parametrize(("address", "kind"), CASES)
def test_resolver_matches_the_servers(stack: Stack, real: Real, address: str,
                                      kind: str) -> None:
    answer = resolve(stack, address)
    assert answer.kind == kind, answer.steps
    domain = address.rpartition("@")[2]

    # --- Postfix: hosted domain, mailbox table, access maps, RCPT verdict
    assert (real.postmap("vdomains", domain) == "OK") == answer.hosted
    assert (real.postmap("vmailbox", address) == "OK") == kind.startswith("mailbox")
    code, text = real.rcpt(address)
    assert (code == 250) == answer.accepted, (code, text, answer.steps)
    if not answer.accepted:
        assert answer.rcpt_reply is not None
        assert f"{code} {text}" == answer.rcpt_reply, answer.steps
    access = real.postmap("recipient_access", address)
    if access is None:
        access = real.postmap("recipient_access", domain)
    if access is not None and access != "DUNNO":
        assert answer.rcpt_reply is not None and answer.rcpt_reply.endswith(
            access.split(" ", 2)[2])

    # --- Postfix: where accepted mail goes after alias expansion
    if answer.accepted:
        assert [d.address for d in answer.deliveries] == real.expand(address)
        for d in answer.deliveries:
            if d.how == "mailbox":
                assert real.postmap("vmailbox", d.address) == "OK"
                assert real.user(d.address) is not None  # Dovecot's LMTP finds the user
            elif d.how == "discard":
                assert real.postmap("transport", d.address.rpartition("@")[2]) \
                    .startswith("discard:")  # type: ignore[union-attr]
            else:
                assert d.how in ("remote", "discarded (sandbox)")
                assert real.postmap("vdomains", d.address.rpartition("@")[2]) is None
    else:
        assert answer.deliveries == ()

    # --- Dovecot: userdb and the passdbs per service
    user = real.user(address)
    assert (user is not None) == kind.startswith("mailbox")
    if user is not None:
        assert answer.quota is not None
        expected_rule = "*:storage=0" if answer.quota == 0 else f"*:storage={answer.quota}B"
        assert user["quota_rule"] == expected_rule
    logins = {lg.protocol: lg.allowed for lg in answer.logins}
    for service in ("imap", "pop3", "smtp"):
        assert real.auth(address, service) == logins.get(service, False), (service, logins)

    # --- Postfix submission: sending suspended
    assert real.postmap("sasl_access", address) == answer.sending_reply


def test_default_address_actions_are_the_ones_set(stack: Stack, real: Real) -> None:
    """Each default-address action, as the resolver describes it and as Postfix has it."""
    rejected = resolve(stack, "nobody@reject.test")
    assert rejected.default_action == "reject" and rejected.default_applies
    assert rejected.default_reject_reason == "Nobody by that name at reject.test"
    assert real.postmap("recipient_access", "reject.test") == (
        "550 5.1.1 Nobody by that name at reject.test")
    discarded = resolve(stack, "nobody@discard.test")
    assert discarded.default_action == "discard"
    assert [d.how for d in discarded.deliveries] == ["discard"]
    delivered = resolve(stack, "nobody@deliver.test")
    assert delivered.default_action == "deliver"
    assert delivered.default_target == "catchall@deliver.test"
    assert [(d.address, d.how) for d in delivered.deliveries] == [
        ("catchall@deliver.test", "mailbox")]
    assert real.postmap("valias", "@deliver.test") == "catchall@deliver.test"
    # an existing mailbox of a catch-all domain is not caught
    known = resolve(stack, "known@discard.test")
    assert known.kind == "mailbox" and not known.default_applies
    assert [d.address for d in known.deliveries] == real.expand("known@discard.test") == [
        "known@discard.test"]
