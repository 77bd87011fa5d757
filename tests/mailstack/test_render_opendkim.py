"""OpenDKIM's files come from the snapshot in every dialect, only when a domain signs, with
every name re-checked; the real `opendkim -n` accepts what is rendered."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from mailadmin.mailstack import StackSnapshot
from mailadmin.mailstack.render import RenderError
from mailadmin.mailstack.snapshot import DkimKeySnap
from mailadmin.names import UnsafeName

from ..dnsserver import IN_CI
from .test_render import GOLDEN_VARIANTS, ROOT, SNAPSHOT, render_dialect

SIGNING = dataclasses.replace(
    SNAPSHOT, settings=dataclasses.replace(SNAPSHOT.settings, dkim_key_dir="/etc/mailadmin/dkim",
                                           dkim_milter_port=8891),
    dkim_keys=(DkimKeySnap("example.com", "s20261206"),
               DkimKeySnap("xn--bcher-kva.example", "s20261101-2")))


@pytest.mark.parametrize(("dialect", "backend"), GOLDEN_VARIANTS)
def test_every_dialect_renders_the_signer_when_a_domain_signs(
        dialect: str, backend: str, tmp_path: Path) -> None:
    plain = render_dialect(dialect, backend, tmp_path)
    assert not any(rel.startswith("opendkim/") for rel in plain)
    assert "milter" not in plain["postfix/main.cf"]
    files = render_dialect(dialect, backend, tmp_path, SIGNING)
    assert files["opendkim/KeyTable"].splitlines()[1:] == [
        "s20261206._domainkey.example.com example.com:s20261206:"
        "/etc/mailadmin/dkim/example.com/s20261206.private",
        "s20261101-2._domainkey.xn--bcher-kva.example xn--bcher-kva.example:s20261101-2:"
        "/etc/mailadmin/dkim/xn--bcher-kva.example/s20261101-2.private",
    ]
    assert files["opendkim/SigningTable"].splitlines()[1:] == [
        "*@example.com s20261206._domainkey.example.com",
        "*@xn--bcher-kva.example s20261101-2._domainkey.xn--bcher-kva.example",
    ]
    assert f"KeyTable file:{ROOT}/opendkim/KeyTable" in files["opendkim/opendkim.conf"]
    main_cf = files["postfix/main.cf"]
    assert "smtpd_milters = inet:127.0.0.1:8891" in main_cf
    assert "non_smtpd_milters = $smtpd_milters" in main_cf
    assert "milter_default_action = accept" in main_cf
    # everything else is exactly the release without DKIM
    same = {rel for rel in plain if rel != "postfix/main.cf"}
    assert {rel: files[rel] for rel in same} == {rel: plain[rel] for rel in same}


@pytest.mark.parametrize(("domain", "selector"), [
    ("example.com\nInjected yes", "s20261206"),
    ("example.com", "s2026 1206"),
    ("example.com", "default"),
    ("example.com", "../../etc/shadow"),
    ("a:b.example", "s20261206"),
])
def test_unsafe_names_are_refused(domain: str, selector: str, tmp_path: Path) -> None:
    bad = dataclasses.replace(SIGNING, dkim_keys=(DkimKeySnap(domain, selector),))
    with pytest.raises((RenderError, UnsafeName)):
        render_dialect("files-2.3", "-", tmp_path, bad)


def test_opendkim_accepts_the_rendered_config(tmp_path: Path) -> None:
    binary = shutil.which("opendkim") or "/usr/sbin/opendkim"
    if not Path(binary).exists():
        if IN_CI:
            pytest.fail("opendkim is needed in CI (Debian package opendkim)")
        pytest.skip("opendkim not installed")
    root = tmp_path / "release"
    snapshot: StackSnapshot = SIGNING
    from mailadmin.mailstack import render

    for rel, text in render(snapshot, str(root)).items():
        if rel.startswith("opendkim/"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    conf = root / "opendkim" / "opendkim.conf"
    ok = subprocess.run([binary, "-n", "-x", str(conf)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    conf.write_text(conf.read_text() + "NoSuchSetting yes\n")
    bad = subprocess.run([binary, "-n", "-x", str(conf)], capture_output=True, text=True)
    assert bad.returncode != 0 and "unrecognized parameter" in bad.stderr


@pytest.mark.parametrize(("algorithm", "signs"), [("rsa", True), ("ed25519", False)])
def test_which_keys_opendkim_can_sign_with(algorithm: str, signs: bool, tmp_path: Path) -> None:
    """Why only RSA keys reach OpenDKIM (`dkim.SIGNING_ALGORITHMS`): Debian's OpenDKIM 2.11
    answers a message for an Ed25519 key with a temporary failure instead of signing it. If
    this starts to sign, Ed25519 can be let through."""
    import tempfile

    from mailadmin import dkim

    binary = shutil.which("opendkim") or "/usr/sbin/opendkim"
    if not Path(binary).exists():
        if IN_CI:
            pytest.fail("opendkim is needed in CI (Debian package opendkim)")
        pytest.skip("opendkim not installed")
    assert (algorithm in dkim.SIGNING_ALGORITHMS) == signs
    # OpenDKIM refuses keys below a world-writable folder such as /tmp
    keys = Path(tempfile.mkdtemp(prefix="mailadmin-dkim-", dir="/run"))
    try:
        key = keys / "ex.test" / "s20261206.private"
        key.parent.mkdir()
        key.write_bytes(dkim.generate(algorithm).private_pem)  # type: ignore[arg-type]
        key.chmod(0o600)
        (tmp_path / "KeyTable").write_text(f"s._domainkey.ex.test ex.test:s20261206:{key}\n")
        (tmp_path / "SigningTable").write_text("*@ex.test s._domainkey.ex.test\n")
        conf = tmp_path / "opendkim.conf"
        conf.write_text(f"Syslog no\nMode s\nKeyTable file:{tmp_path}/KeyTable\n"
                        f"SigningTable refile:{tmp_path}/SigningTable\n")
        message = tmp_path / "m.eml"
        message.write_bytes(b"From: a@ex.test\r\nTo: b@ex.test\r\nSubject: x\r\n\r\nhi\r\n")
        out = subprocess.run([binary, "-x", str(conf), "-t", str(message), "-vv"],
                             capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        assert ("DKIM-Signature" in text) == signs, text
        if not signs:
            assert "rcode='451'" in text
    finally:
        shutil.rmtree(keys, ignore_errors=True)
