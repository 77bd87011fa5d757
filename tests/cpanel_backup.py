"""A cPanel account backup (cpmove-USER, unpacked) as cPanel writes one, for import tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from passlib.hash import md5_crypt, sha512_crypt

#: The mailboxes' old passwords, which they keep across the import.
OLD_PASSWORDS = {
    "anna@shop.test": "anna-old-Passw0rd",
    "ben@shop.test": "ben-old-Passw0rd",
    "carl@blog.test": "carl-old-Passw0rd",
}
QUOTAS = {"anna@shop.test": 1024**3, "ben@shop.test": 500 * 1024**2,
          "carl@blog.test": 250 * 1024**2}
FAIL_MESSAGE = "No such person at this address"


@dataclass
class Backup:
    path: Path
    files: dict[str, str] = field(default_factory=dict)

    def write(self, relative: str, text: str) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self.files[relative] = text
        return target


def _passwd_line(local: str, domain: str) -> str:
    return f"{local}:x:1001:1001::/home/shopuser/mail/{domain}/{local}:/home/shopuser\n"


def build_backup(root: Path, *, domains: tuple[str, str] = ("shop.test", "blog.test")) -> Backup:
    """Two domains: shop.test (anna with a $6$ hash, ben with a $1$ hash, quotas, forwarders,
    a :fail: default address, an autoresponder) and blog.test (carl, a forwarder, a default
    address delivering to carl), and a domain forwarder old-shop.test -> shop.test."""
    shop, blog = domains
    backup = Backup(root / "cpmove-shopuser")
    hashes = {
        f"anna@{shop}": sha512_crypt.using(rounds=5000).hash(OLD_PASSWORDS["anna@shop.test"]),
        f"ben@{shop}": md5_crypt.hash(OLD_PASSWORDS["ben@shop.test"]),
        f"carl@{blog}": sha512_crypt.using(rounds=5000).hash(OLD_PASSWORDS["carl@blog.test"]),
    }
    backup.write(f"homedir/etc/{shop}/passwd", _passwd_line("anna", shop) + _passwd_line("ben", shop))
    backup.write(f"homedir/etc/{shop}/shadow",
                 f"anna:{hashes[f'anna@{shop}']}:19000::::::\n"
                 f"ben:{hashes[f'ben@{shop}']}:19000::::::\n")
    backup.write(f"homedir/etc/{shop}/quota", f"anna:{1024**3}\nben:{500 * 1024**2}\n")
    backup.write(f"homedir/etc/{blog}/passwd", _passwd_line("carl", blog))
    backup.write(f"homedir/etc/{blog}/shadow", f"carl:{hashes[f'carl@{blog}']}:19000::::::\n")
    backup.write(f"homedir/etc/{blog}/quota", f"carl:{250 * 1024**2}\n")
    backup.write(f"va/{shop}",
                 f"sales@{shop}: anna@{shop}, partner@elsewhere.test\n"
                 f"ben@{shop}: anna@{shop}\n"
                 f'anna@{shop}: "|/usr/local/cpanel/bin/autorespond anna@{shop} '
                 '/home/shopuser/.autorespond"\n'
                 f"*: :fail: {FAIL_MESSAGE}\n")
    backup.write(f"va/{blog}", f"info@{blog}: carl@{blog}\n*: carl@{blog}\n")
    backup.write("vad/old-shop.test", f"old-shop.test: {shop}\n")
    backup.write(f"homedir/.autorespond/anna@{shop}",
                 f'From: "Anna" <anna@{shop}>\nSubject: Away this week\nCharset: utf-8\n\n'
                 "I am away until Monday.\n")
    backup.write(f"homedir/.autorespond/anna@{shop}.json",
                 json.dumps({"interval": 48, "start": None, "stop": None}))
    return backup
