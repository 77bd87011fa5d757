"""Dovecot 2.4 (Debian 13's real doveconf) accepts a node's doveadm server as rendered."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.lab.chroot24 import Chroot
from mailadmin.mailstack.render import render
from tests.mailstack.test_render import SETTINGS, SNAPSHOT

pytestmark = pytest.mark.mailstack


@pytest.fixture
def shared_dir(chroot24: Chroot) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dva24-", dir="/tmp"))
    d.chmod(0o755)
    chroot24.share(d)
    try:
        yield d
    finally:
        chroot24.unshare(d)
        shutil.rmtree(d, ignore_errors=True)


def test_real_24_doveconf_accepts_the_doveadm_server(chroot24: Chroot,
                                                      shared_dir: Path) -> None:
    secret = shared_dir / "doveadm-password.conf.ext"
    secret.write_text("doveadm_password = s3cret-between-nodes\n")
    settings = dataclasses.replace(SETTINGS, dovecot_version="2.4",
                                   doveadm_address="127.0.3.1", doveadm_port=12345,
                                   doveadm_secret_file=str(secret))
    root = shared_dir / "release"
    for rel, text in render(dataclasses.replace(SNAPSHOT, settings=settings),
                            str(root)).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    n = chroot24.run("doveconf", "-n", "-c", str(root / "dovecot" / "dovecot.conf"))
    assert n.returncode == 0, n.stderr
    assert n.stdout.startswith("# 2.4."), n.stdout[:80]
    assert "listen = 127.0.3.1" in n.stdout and "port = 12345" in n.stdout
    assert "doveadm_password = # hidden" in n.stdout, n.stdout
