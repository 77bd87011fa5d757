"""Which Dovecot configuration syntax the installed Dovecot reads ("2.3" or "2.4").

`dovecot --version` prints e.g. ``2.3.19.1 (9b53102964)`` (Debian 12) or
``2.4.1-4 (7d8c0e5759)`` (Debian 13). The server setting ``dovecot_version = auto`` resolves
through here; "2.3" or "2.4" in the setting overrides the detection.
"""

from __future__ import annotations

import re
import subprocess
import typing as t

from .names import UnsafeName

DovecotVersion = t.Literal["2.3", "2.4"]
SUPPORTED: tuple[DovecotVersion, ...] = ("2.3", "2.4")

_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)[.\-\s(]")


class DovecotVersionError(UnsafeName):
    """Dovecot's version could not be read or is one mailadmin cannot generate for."""

    code = "dovecot_version"


def parse_dovecot_version(output: str) -> DovecotVersion:
    """Major.minor from `dovecot --version` output; refuses versions without a renderer."""
    m = _VERSION_RE.match(output + " ")
    if m is None:
        raise DovecotVersionError(f"cannot read a Dovecot version from {output.strip()[:80]!r}")
    version = f"{int(m.group(1))}.{int(m.group(2))}"
    if version == "2.3":
        return "2.3"
    if version == "2.4":
        return "2.4"
    raise DovecotVersionError(
        f"Dovecot {version} is not supported (supported: {', '.join(SUPPORTED)})"
    )


def detect_dovecot_version(dovecot_binary: str = "dovecot") -> DovecotVersion:
    """Run ``<dovecot_binary> --version`` and return "2.3" or "2.4"."""
    try:
        proc = subprocess.run([dovecot_binary, "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DovecotVersionError(f"cannot run {dovecot_binary} --version: {exc}") from exc
    if proc.returncode != 0:
        raise DovecotVersionError(
            f"{dovecot_binary} --version exited {proc.returncode}: {proc.stderr.strip()[:200]}"
        )
    return parse_dovecot_version(proc.stdout)
