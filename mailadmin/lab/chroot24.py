"""Debian 13's real Dovecot 2.4 in a chroot on a Debian 12 host (for the sandbox and tests).

Follows ../shared/dovecot24-lab.md: a minbase trixie chroot with the Dovecot packages is
bootstrapped once (mmdebstrap, ~20 s; debootstrap as a fallback), packed into a tarball
outside the repository (``/var/cache/mailadmin/dovecot24-chroot-<key>.tar.gz``) and restored
from it in about 2 s when the chroot folder is missing. ``<key>`` is a hash of the suite and the
package list, and the chroot records the same list: when the list changes, an old tarball is
no longer found (or, restored from an explicit cache path, is recognised as stale) and an old
chroot folder is rebuilt - unless a sandbox is mounted in it, which is never deleted.
The chroot shares the host's network, so its Dovecot listens on the host's 127.0.0.1 (and
reaches PostgreSQL / MariaDB there); a sandbox folder is bind-mounted into the chroot at the
*same* absolute path, so every generated path and unix socket means the same thing on both
sides and the host's Postfix talks to the chroot's Dovecot over those sockets.

Nothing here runs in production: on Debian 13 Dovecot 2.4 is simply the installed package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from ..mailstack.apply import Tools

PACKAGES = (
    "dovecot-core", "dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd", "dovecot-sieve",
    "dovecot-sqlite", "dovecot-pgsql", "dovecot-mysql",
)
SUITE = "trixie"
#: What a chroot built from PACKAGES records in _MARKER; anything else is stale.
CONTENTS = f"{SUITE} {' '.join(PACKAGES)}\n"
#: Changes whenever SUITE or PACKAGES do, so a cache built from another list is not reused.
CACHE_KEY = hashlib.sha256(CONTENTS.encode()).hexdigest()[:12]
DEFAULT_CACHE = f"/var/cache/mailadmin/dovecot24-chroot-{CACHE_KEY}.tar.gz"
DEFAULT_ROOT = "/var/cache/mailadmin/dovecot24/root"
#: Written last into a complete chroot (holding CONTENTS); a folder without it, or with
#: another package list in it, is rebuilt.
_MARKER = "etc/mailadmin-dovecot24-ready"
_TOOLS = ("dovecot", "doveconf", "doveadm", "sievec")


class ChrootError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Chroot:
    root: Path
    cache: Path
    #: How the chroot was obtained this time: "present", "restored" or the bootstrap tool.
    how: str
    seconds: float

    @property
    def bin_dir(self) -> Path:
        """Wrapper scripts running the chroot's tools (``exec chroot ROOT doveconf "$@"``)."""
        return self.root.parent / "bin"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def tools(self) -> Tools:
        """apply's Tools with Dovecot's commands from the chroot and Postfix's from the host."""
        return Tools(doveconf=self.tool("doveconf"), doveadm=self.tool("doveadm"),
                     sievec=self.tool("sievec"))

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["chroot", str(self.root), *args], capture_output=True,
                              text=True, timeout=timeout, check=False)

    def version(self) -> str:
        return self.run("dovecot", "--version").stdout.strip()

    # ------------------------------------------------------------------ shared folders

    def share(self, directory: str | Path) -> None:
        """Bind-mount `directory` into the chroot at the same absolute path."""
        directory = Path(directory).absolute()
        target = self.root / directory.relative_to("/")
        if _is_mountpoint(target):
            return
        target.mkdir(parents=True, exist_ok=True)
        _check(["mount", "--bind", str(directory), str(target)])

    def unshare(self, directory: str | Path) -> None:
        target = self.root / Path(directory).absolute().relative_to("/")
        if _is_mountpoint(target):
            _check(["umount", str(target)])
        with contextlib.suppress(OSError):
            target.rmdir()


def _mount_points() -> list[str]:
    # os.path.ismount misses bind mounts within one file system (same st_dev)
    return [line.split()[1].replace("\\040", " ")
            for line in Path("/proc/self/mounts").read_text().splitlines()]


def _is_mountpoint(path: Path) -> bool:
    return str(path) in _mount_points()


def _check(cmd: list[str], timeout: float = 600) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ChrootError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                          f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def debian_mirror() -> str:
    """The mirror named in the host's apt sources (deb.debian.org if none is found)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One build/restore at a time (parallel test runs share the chroot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_root(root: Path) -> None:
    """Delete a chroot folder, never descending into a bind mount (lab section 2 gotcha)."""
    if not root.exists():
        return
    for mount_point in _mount_points():
        if mount_point.startswith(f"{root}/"):
            raise ChrootError(f"refusing to delete {root}: {mount_point} is mounted in it")
    _check(["rm", "-rf", "--one-file-system", str(root)])


def _bootstrap(root: Path, log: Path) -> str:
    tool = "mmdebstrap" if shutil.which("mmdebstrap") else None
    if tool is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"]):
            apt = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if apt.returncode != 0:
                break
        tool = "mmdebstrap" if shutil.which("mmdebstrap") else None
    if tool is None and shutil.which("debootstrap"):
        tool = "debootstrap"
    if tool is None:
        raise ChrootError("neither mmdebstrap nor debootstrap is available")
    cmd = [tool, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root),
           debian_mirror()]
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False,
                              timeout=900)
    if proc.returncode != 0:
        raise ChrootError(f"{tool} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    # later apt-get runs inside the chroot must not start services either
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    subprocess.run(["chroot", str(root), "apt-get", "clean"], capture_output=True, check=False)
    lists = root / "var/lib/apt/lists"
    if lists.is_dir():
        for p in lists.iterdir():
            if p.is_file():
                p.unlink()
    return tool


def _chroot_ids(root: Path, database: str, name: str) -> int | None:
    proc = subprocess.run(["chroot", str(root), "getent", database, name],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return int(proc.stdout.split(":")[2])


def _ensure_account(root: Path, name: str, uid: int, gid: int) -> None:
    """Give `name` the host's uid/gid inside the chroot (create or renumber it).

    The chroot resolves user names through its own /etc/passwd. Sockets made ``user = postfix``
    must belong to the host's Postfix, and files the renderer makes readable by the host's
    ``dovecot`` group (the passwd-file) must be readable by the chroot's auth process.
    """
    chroot = ["chroot", str(root)]
    old_gid = _chroot_ids(root, "group", name)
    if old_gid is None:
        _check([*chroot, "groupadd", "--system", "--gid", str(gid), name])
    elif old_gid != gid:
        _check([*chroot, "groupmod", "--gid", str(gid), name])
        _check([*chroot, "find", "/", "-xdev", "-gid", str(old_gid),
                "-exec", "chgrp", "-h", str(gid), "{}", "+"])
    old_uid = _chroot_ids(root, "passwd", name)
    if old_uid is None:
        _check([*chroot, "useradd", "--system", "--uid", str(uid), "--gid", str(gid),
                "--home-dir", "/nonexistent", "--no-create-home",
                "--shell", "/usr/sbin/nologin", name])
    elif old_uid != uid:
        _check([*chroot, "usermod", "--uid", str(uid), "--gid", str(gid), name])
        _check([*chroot, "find", "/", "-xdev", "-uid", str(old_uid),
                "-exec", "chown", "-h", str(uid), "{}", "+"])


def _host_ids(name: str) -> tuple[int, int] | None:
    try:
        return pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _write_wrappers(root: Path) -> None:
    bin_dir = root.parent / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in _TOOLS:
        path = bin_dir / tool
        text = f'#!/bin/sh\nexec chroot {root} {tool} "$@"\n'
        if path.exists() and path.read_text() == text:
            continue
        # atomically: another test run may be executing the wrapper right now
        tmp = path.with_name(f".{tool}.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)


def _is_current(root: Path) -> bool:
    marker = root / _MARKER
    try:
        return marker.read_text() == CONTENTS
    except (FileNotFoundError, NotADirectoryError):
        return False


def ensure_chroot(
    root: str | Path | None = None,
    cache: str | Path | None = None,
    *,
    vmail_uid: int = 5000,
    vmail_gid: int = 5000,
    rebuild: bool = False,
) -> Chroot:
    """A ready Dovecot 2.4 chroot: reused, else restored from `cache`, else bootstrapped.

    After a bootstrap the tarball is written so the next run restores it. The host's vmail,
    postfix and dovecot ids are (re)applied inside every time, as they may differ per host.
    """
    root = Path(root or os.environ.get("MAILADMIN_DOVECOT24_ROOT", DEFAULT_ROOT)).absolute()
    cache = Path(cache or os.environ.get("MAILADMIN_DOVECOT24_CACHE", DEFAULT_CACHE)).absolute()
    if os.geteuid() != 0:
        raise ChrootError("building and entering a chroot needs root")
    t0 = time.monotonic()
    with _lock(root.parent / ".lock"):
        how = "present"
        if rebuild or not _is_current(root):
            # refuses (ChrootError) while another run has a sandbox mounted in the old root
            _remove_root(root)
            partial = root.with_name(root.name + ".partial")
            _remove_root(partial)
            partial.mkdir(parents=True)
            if cache.exists() and not rebuild:
                _check(["tar", "-C", str(partial), "-xzf", str(cache)])
                how = "restored"
                if not _is_current(partial):  # a tarball of another package list
                    _remove_root(partial)
                    partial.mkdir(parents=True)
            if not _is_current(partial):
                how = _bootstrap(partial, root.parent / "bootstrap.log")
                (partial / _MARKER).write_text(CONTENTS)
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(cache.name + ".tmp")
                _check(["tar", "-C", str(partial), "-czf", str(tmp), "."])
                os.replace(tmp, cache)
            if not (partial / "usr/sbin/dovecot").exists():
                raise ChrootError(f"no usr/sbin/dovecot in the chroot built from {cache}")
            os.rename(partial, root)
        for name in ("dovecot", "postfix"):
            ids = _host_ids(name)
            if ids is not None:
                _ensure_account(root, name, *ids)
        _ensure_account(root, "vmail", vmail_uid, vmail_gid)
        _write_wrappers(root)
    return Chroot(root, cache, how, time.monotonic() - t0)


if __name__ == "__main__":  # python -m mailadmin.lab.chroot24 [--rebuild]
    import sys

    c = ensure_chroot(rebuild="--rebuild" in sys.argv)
    print(f"{c.root}: {c.how} in {c.seconds:.1f}s; dovecot {c.version()}; cache {c.cache}")
