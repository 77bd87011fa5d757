"""The systemd units the README installs are valid for systemd itself (systemd-analyze verify).

The installed paths (/opt/mailadmin/.venv/bin/mailadmin) are exchanged for this checkout's, so
systemd also checks that every command exists and is executable; Dovecot's drop-in is checked
on top of Debian's own dovecot.service, as it will run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import unavailable

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"
INSTALLED = "/opt/mailadmin/.venv/bin/mailadmin"
DEBIAN_DOVECOT = Path("/lib/systemd/system/dovecot.service")


def test_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not DEBIAN_DOVECOT.exists():
        unavailable("systemd-analyze and Debian's dovecot.service")
    here = str(Path(sys.executable).parent / "mailadmin")
    names = []
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text()
        assert "ExecStart=" in text
        (tmp_path / unit.name).write_text(text.replace(INSTALLED, here))
        names.append(unit.name)
    shutil.copy(DEBIAN_DOVECOT, tmp_path / "dovecot.service")
    shutil.copytree(UNITS / "dovecot.service.d", tmp_path / "dovecot.service.d")
    names.append("dovecot.service")
    result = subprocess.run([analyze, "verify", *names], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines()
                  if any(word in line for word in ("Unknown", "Invalid", "not executable",
                                                   "Failed", "bad-setting"))]
    assert not complaints, result.stderr


@pytest.mark.parametrize("unit", ["mailadmin-node.service", "mailadmin-panel.service"])
def test_units_run_the_commands_that_exist(unit: str) -> None:
    text = (UNITS / unit).read_text()
    command = text.split("ExecStart=", 1)[1].split()[1]
    result = subprocess.run([str(Path(sys.executable).parent / "mailadmin"), command, "--help"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
