"""`mailadmin sandbox` runs servers as root: it must never run files it did not write itself.

A planted Postfix ``main.cf`` whose ``daemon_directory`` names a folder of scripts would run
them as root with ``postfix -c DIR ... start|stop|check|reload``. The test first proves the
planted config *would* leave the marker if Postfix were pointed at it, then that neither
``sandbox stop`` nor ``sandbox start`` (nor ``sandbox apply``) ever does.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailadmin import migrate
from mailadmin.cli.lab import sandbox_stop_command
from mailadmin.db import make_engine

from .conftest import require_stack

pytestmark = pytest.mark.mailstack

EVIL_PROGRAMS = ("postfix-script", "master", "postlog", "postsuper", "post-install",
                 "postfix-wrapper", "postmulti-script", "postdrop", "postqueue", "showq")


@pytest.fixture
def scratch() -> Iterator[Path]:
    require_stack()
    top = Path(tempfile.mkdtemp(prefix="mtr-", dir="/tmp"))
    top.chmod(0o755)
    yield top
    for sub in ("sb", "sb2"):
        CliRunner().invoke(sandbox_stop_command, ["--dir", str(top / sub)])
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def run(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> t.Any:
    engine = make_engine(f"sqlite:///{scratch / 'db.sqlite'}")
    migrate.upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("MAILADMIN_DATABASE_URL", f"sqlite:///{scratch / 'db.sqlite'}")
    from mailadmin.cli import main

    def _run(*args: str) -> t.Any:
        return CliRunner().invoke(main, ["--instance", str(scratch / "inst"), *args])

    return _run


def plant(directory: Path, evil: Path, marker: Path) -> Path:
    """A release folder, `current` link and state files an attacker could leave behind."""
    evil.mkdir(parents=True, exist_ok=True)
    for name in EVIL_PROGRAMS:
        script = evil / name
        script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\nexit 0\n")
        script.chmod(0o755)
    release = directory / "config" / "releases" / ("e" * 64)
    pf = release / "postfix"
    pf.mkdir(parents=True)
    (release / "dovecot").mkdir()
    (directory / "spool" / "postfix" / "pid").mkdir(parents=True)
    (pf / "main.cf").write_text(
        f"daemon_directory = {evil}\ncommand_directory = {evil}\nmeta_directory = {evil}\n"
        f"queue_directory = {directory}/spool/postfix\n"
        "compatibility_level = 3.6\nmaillog_file = /dev/stdout\n")
    shutil.copy("/etc/postfix/master.cf", pf / "master.cf")
    (release / "dovecot" / "dovecot.conf").write_text("!include /nonexistent\n")
    (directory / "config" / "current").symlink_to(f"releases/{'e' * 64}")
    return release


def test_planted_main_cf_would_run_but_is_never_executed(
        scratch: Path, run: t.Any) -> None:
    marker = scratch / "MARKER"
    evil = scratch / "evil-bin"
    # the planted file is a real threat: Postfix pointed at it runs the script
    probe = scratch / "probe"
    probe.mkdir()
    probe_release = plant(probe, evil, marker)
    subprocess.run(["postfix", "-c", str(probe_release / "postfix"), "stop"],
                   capture_output=True, check=False, timeout=60)
    assert marker.exists(), "the planted config would not even run: the test proves nothing"
    marker.unlink()

    directory = scratch / "sb"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    plant(directory, evil, marker)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        # pid files naming a process that is not ours: it must survive
        (directory / "spool" / "postfix" / "pid" / "master.pid").write_text(
            f"{bystander.pid:>10}\n")
        (directory / "sandbox.json").write_text(json.dumps(
            {"dovecot_pid": bystander.pid, "port_base": 20000,
             "dovecot_conf": f"{directory}/config/current/dovecot/dovecot.conf"}))

        stop = run("sandbox", "stop", "--dir", str(directory))
        assert stop.exit_code == 0, stop.output
        assert not marker.exists()
        assert bystander.poll() is None

        start = run("sandbox", "start", "--dir", str(directory), "--json")
        assert start.exit_code == 0, start.output
        assert not marker.exists()
        assert bystander.poll() is None
        # the servers run from the release this start wrote, the planted one is gone
        info = json.loads(start.output)
        assert info["release"] != "e" * 64
        assert not (directory / "config" / "releases" / ("e" * 64)).exists()
        assert os.readlink(directory / "config" / "current") == f"releases/{info['release']}"

        again = run("sandbox", "apply", "--dir", str(directory), "--restart")
        assert again.exit_code == 0, again.output
        stop = run("sandbox", "stop", "--dir", str(directory))
        assert stop.exit_code == 0, stop.output
        assert not marker.exists()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_folders_others_could_write_are_refused_and_parents_left_alone(
        scratch: Path, run: t.Any) -> None:
    foreign = scratch / "sb"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    result = run("sandbox", "start", "--dir", str(foreign))
    assert result.exit_code != 0 and "not to you" in result.output
    assert not (foreign / "config").exists()

    open_dir = scratch / "sb2"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    result = run("sandbox", "start", "--dir", str(open_dir))
    assert result.exit_code != 0 and "writable by other users" in result.output
    assert stat.S_IMODE(open_dir.stat().st_mode) == 0o777
    assert not (open_dir / "config").exists()

    closed = scratch / "closed"
    closed.mkdir()
    closed.chmod(0o700)
    result = run("sandbox", "start", "--dir", str(closed / "sb"))
    assert result.exit_code != 0 and "not traversable" in result.output
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700
    assert not (closed / "sb").exists()

    result = run("sandbox", "stop", "--dir", str(foreign))
    assert result.exit_code != 0 and "not to you" in result.output

    link = scratch / "link"
    link.symlink_to(open_dir)
    result = run("sandbox", "start", "--dir", str(link))
    assert result.exit_code != 0 and "symbolic link" in result.output
