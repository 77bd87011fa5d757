"""A private Dovecot + Postfix on 127.0.0.1 high ports, run from a rendered release.

Follows the lab recipe (../shared/mailstack-lab.md): runs as root, every path under one
scratch folder whose parents are all o+x, Dovecot in the foreground in its own process group
(stopped with one killpg), Postfix daemonised and always stopped *before* Dovecot (its smtpd
processes hold connections to Dovecot's auth service).

The servers run as root from files in the scratch folder, and a Postfix ``main.cf`` names the
programs Postfix runs (``daemon_directory``): whoever can plant one there runs anything as
root. So the folder must be the invoking user's and writable by nobody else
(`check_sandbox_dir`); a start removes what an earlier run left and runs only from the
release it has just written (`clear_generated`, `start_sandbox(release=...)`); and a stop
never runs Postfix's tools from the folder: it signals the master process, after checking
that it is the system's Postfix master working in this folder's queue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

from ..mailstack.apply import ApplyResult, apply_snapshot
from ..mailstack.snapshot import StackPorts, StackSettings, StackSnapshot

_STATE_FILE = "sandbox.json"
#: Popen handles of Dovecot masters we started, so stop() can reap them (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class SandboxError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class SandboxInfo:
    dir: Path
    ports: StackPorts
    dovecot_pid: int
    release: str | None
    startup_seconds: float

    def as_json(self) -> str:
        return json.dumps({**self.ports.as_dict(), "dir": str(self.dir),
                           "dovecot_pid": self.dovecot_pid, "release": self.release})


def sandbox_settings(
    directory: str | Path,
    port_base: int = 10000,
    *,
    hostname: str = "mail.sandbox.test",
    vmail_uid: int = 5000,
    vmail_gid: int = 5000,
    **overrides: object,
) -> StackSettings:
    """Loopback, high-port, scratch-folder settings; deterministic in (directory, port_base)."""
    d = str(Path(directory).absolute())
    values: dict[str, object] = {
        "hostname": hostname,
        "postmaster_address": f"postmaster@{hostname}",
        "config_dir": f"{d}/config",
        "run_dir": f"{d}/run",
        "state_dir": f"{d}/state",
        "queue_dir": f"{d}/spool/postfix",
        "mail_root": f"{d}/mail",
        "log_dir": f"{d}/log",
        "vmail_uid": vmail_uid,
        "vmail_gid": vmail_gid,
        "listen_address": "127.0.0.1",
        "ports": StackPorts.from_base(port_base),
        "instance_name": "mailadmin-sandbox",
        # failures answered at once; the per-IP auth penalty still applies (lab 4d)
        "auth_failure_delay": 0,
        "deliver_outbound": False,
    }
    values.update(overrides)
    return StackSettings(**values)  # type: ignore[arg-type]


def ensure_vmail_user(uid: int, gid: int, name: str = "vmail") -> None:
    """Create the virtual mail owner like the lab does, unless the ids already exist."""
    try:
        grp.getgrgid(gid)
    except KeyError:
        subprocess.run(["groupadd", "--system", "--gid", str(gid), name], check=True,
                       capture_output=True)
    try:
        pwd.getpwuid(uid)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--uid", str(uid), "--gid", str(gid),
             "--home-dir", "/nonexistent", "--no-create-home",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True,
        )


#: What a sandbox writes into its folder; `clear_generated` removes these before a start.
GENERATED = ("config", "run", "state", "spool", "log", _STATE_FILE)


def check_sandbox_dir(directory: str | Path, *, create: bool = True) -> Path:
    """The absolute scratch folder, created (0755) when missing and `create` is set.

    Refuses (SandboxError) a symbolic link, an existing folder not owned by the invoking user
    or writable by anyone else, and a parent folder that another user could swap the folder
    out of (owned by someone else, or writable by others without the sticky bit) or that
    Postfix's daemons cannot traverse (no o+x). Never changes the mode of a parent.
    """
    directory = Path(os.path.abspath(directory))
    me = os.geteuid()
    for parent in directory.parents:
        try:
            st = parent.lstat()
        except FileNotFoundError:
            continue  # created below, by us
        if stat.S_ISLNK(st.st_mode):
            target = parent.resolve()
            st = target.stat()
        if st.st_uid not in (0, me):
            raise SandboxError(f"{parent} belongs to another user, who could replace "
                               f"{directory}; choose a folder under one of your own")
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise SandboxError(f"{parent} is writable by everyone (without the sticky bit); "
                               "choose another place for the sandbox")
        if not st.st_mode & stat.S_IXOTH:
            raise SandboxError(f"{parent} is not traversable by other users (o+x), which "
                               "Postfix's daemons need; choose a folder such as /tmp/sandbox "
                               "(the sandbox never changes the modes of its parents)")
    try:
        st = directory.lstat()
    except FileNotFoundError:
        if not create:
            raise SandboxError(f"{directory} does not exist") from None
        directory.mkdir(mode=0o755, parents=True)
        directory.chmod(0o755)  # mkdir's mode is cut by the umask
        return directory
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise SandboxError(f"{directory} is not a folder (a symbolic link is not accepted)")
    if st.st_uid != me:
        raise SandboxError(f"{directory} belongs to user id {st.st_uid}, not to you; "
                           "the sandbox runs servers as root only from a folder of yours")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SandboxError(f"{directory} is writable by other users (mode "
                           f"{stat.S_IMODE(st.st_mode):o}); make it 0755 or choose another")
    return directory


def clear_generated(directory: Path) -> None:
    """Remove what an earlier sandbox run wrote (never following a symbolic link), so a
    start only runs files it writes itself. Mailboxes under ``mail/`` stay."""
    for name in GENERATED:
        path = directory / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()
    mail = directory / "mail"
    if mail.is_symlink():
        raise SandboxError(f"{mail} is a symbolic link; remove it first")


def prepare_dirs(settings: StackSettings) -> None:
    """Create the folders the servers need (not the config; apply writes that)."""
    for p in (settings.config_dir, settings.run_dir, settings.state_dir, settings.queue_dir,
              f"{settings.state_dir}/dovecot"):
        Path(p).mkdir(parents=True, exist_ok=True)
    if settings.log_dir is not None:
        Path(settings.log_dir).mkdir(parents=True, exist_ok=True)
    mail = Path(settings.mail_root)
    mail.mkdir(parents=True, exist_ok=True)
    if mail.is_symlink():
        raise SandboxError(f"{mail} is a symbolic link")
    os.chown(mail, settings.vmail_uid, settings.vmail_gid)
    mail.chmod(0o750)
    # Postfix's master opens state/ as user postfix: every parent must be traversable. Only
    # the folders of the sandbox itself are changed; a parent above it is checked instead.
    top = Path(settings.config_dir).parent
    for folder in [Path(settings.config_dir), *Path(settings.config_dir).parents,
                   Path(settings.queue_dir), *Path(settings.queue_dir).parents]:
        mode = folder.stat().st_mode
        if mode & 0o001:
            continue
        if folder != top and top not in folder.parents:
            raise SandboxError(f"{folder} is not traversable by other users (o+x), which "
                               "Postfix's daemons need; the sandbox does not change it")
        folder.chmod(mode | 0o001)


def free_port_base(start: int = 20000, stop: int = 60000, step: int = 1000) -> int:
    """A base whose derived ports are all free on 127.0.0.1 right now (racy, but cheap)."""
    offsets: list[int] = list(StackPorts.from_base(0).as_dict().values())
    slots = max(1, (stop - start) // step)
    first = start + (os.getpid() % slots) * step  # parallel runs start at different places
    bases: list[int] = [*range(first, stop, step), *range(start, first, step)]
    for base in bases:
        free = True
        for off in offsets:
            with socket.socket() as sock:
                # As Dovecot and Postfix do: a port in TIME_WAIT from an earlier stack is free.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", base + off))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise SandboxError("no free port range on 127.0.0.1")


def wait_for_ports(ports: StackPorts, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    for port in ports.as_dict().values():
        while True:
            try:
                socket.create_connection((host, port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SandboxError(f"port {port} did not open within {timeout}s") from None
                time.sleep(0.01)


def sandbox_paths(directory: Path) -> tuple[Path, Path]:
    current = directory / "config" / "current"
    return current / "dovecot" / "dovecot.conf", current / "postfix"


def start_sandbox(
    directory: str | Path, port_base: int = 10000, *, release: Path | None = None,
    host: str = "127.0.0.1",
) -> SandboxInfo:
    """Start Dovecot and Postfix from ``<directory>/config/current``; with `release` (a
    release folder the caller has just written), only if the link points at it. `host`:
    where the servers listen (a sandboxed mail node's own loopback address).

    The release must have been applied with `sandbox_settings(directory, port_base)`
    (see `sandbox_apply`). Returns once every port accepts connections.
    """
    directory = Path(directory).absolute()
    dovecot_conf, postfix_dir = sandbox_paths(directory)
    if release is not None and (directory / "config" / "current").resolve() != release.resolve():
        # started through the link (a reload re-reads the config through it), but only when
        # it names the release the caller has just written
        raise SandboxError(f"{directory}/config/current does not point at {release}")
    if not dovecot_conf.exists():
        raise SandboxError(f"nothing applied under {directory}/config yet")
    stop_sandbox(directory)  # a previous run that crashed must not hold the ports
    ports = StackPorts.from_base(port_base)
    t0 = time.monotonic()
    dov = subprocess.Popen(
        ["dovecot", "-F", "-c", str(dovecot_conf)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _CHILDREN[dov.pid] = dov
    (directory / _STATE_FILE).write_text(json.dumps(
        {"dovecot_pid": dov.pid, "port_base": port_base, "dovecot_conf": str(dovecot_conf),
         "host": host}
    ))
    proc = subprocess.run(["postfix", "-c", str(postfix_dir), "start"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log = directory / "log" / "postfix.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        stop_sandbox(directory)
        raise SandboxError(f"postfix start failed: {proc.stdout}{proc.stderr}\n{tail}")
    try:
        wait_for_ports(ports, host=host)
    except SandboxError:
        err = b""
        if dov.poll() is not None and dov.stderr is not None:
            err = dov.stderr.read()
        stop_sandbox(directory)
        raise SandboxError(f"sandbox did not come up: {err.decode(errors='replace')}") from None
    link = directory / "config" / "current"
    return SandboxInfo(directory, ports, dov.pid, Path(os.readlink(link)).name,
                       time.monotonic() - t0)


def _is_our_dovecot(pid: int, conf: str) -> bool:
    """Guard against a recycled pid: only signal a dovecot started with our config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"dovecot") and conf.encode() in cmdline


def _postfix_daemon_directory() -> Path:
    """The system's Postfix programs (from the compiled-in default, not from any main.cf)."""
    try:
        proc = subprocess.run(["postconf", "-d", "-h", "daemon_directory"], capture_output=True,
                              text=True, check=False, timeout=30)
        found = proc.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        found = ""
    return Path(found or "/usr/lib/postfix/sbin")


def _postfix_master_pid(queue_dir: Path) -> int | None:
    """The pid of the system's Postfix master serving `queue_dir`, or None.

    The pid file is only a hint (anyone who could write it could name any process): the
    process must run the system's ``master`` binary and work in this queue folder.
    """
    try:
        pid = int((queue_dir / "pid" / "master.pid").read_text().strip())
        exe = Path(os.readlink(f"/proc/{pid}/exe"))
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError):
        return None
    if pid <= 1 or exe != _postfix_daemon_directory() / "master":
        return None
    return pid if cwd == queue_dir.resolve() else None


def _stop_postfix(directory: Path, timeout: float) -> None:
    """What ``postfix stop`` does (SIGTERM to the master, which ends its children, then wait),
    without running Postfix's tools with a main.cf found in the folder."""
    pid = _postfix_master_pid(directory / "spool" / "postfix")
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.02)


def stop_sandbox(directory: str | Path, timeout: float = 10.0) -> None:
    """Stop Postfix first, then Dovecot's whole process group. Safe to call twice."""
    directory = Path(directory).absolute()
    _stop_postfix(directory, timeout)
    state_file = directory / _STATE_FILE
    if not state_file.exists() or state_file.is_symlink():
        return
    try:
        state = json.loads(state_file.read_text())
        pid = int(state["dovecot_pid"])
        conf = str(state["dovecot_conf"])
    except (ValueError, KeyError, TypeError, OSError):
        state_file.unlink(missing_ok=True)
        return
    # only a Dovecot started with a config of this very folder, leading its own group
    ours = conf.startswith(f"{directory}/config/") and _is_our_dovecot(pid, conf)
    with contextlib.suppress(OSError):
        ours = ours and os.getpgid(pid) == pid
    if ours:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        child = _CHILDREN.pop(pid, None)
        deadline = time.monotonic() + timeout
        while _is_our_dovecot(pid, conf):
            if child is not None and child.poll() is not None:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        if child is not None:
            child.wait(timeout)
    state_file.unlink(missing_ok=True)


def restart_sandbox(directory: str | Path) -> SandboxInfo:
    directory = Path(directory).absolute()
    state = json.loads((directory / _STATE_FILE).read_text())
    return start_sandbox(directory, int(state["port_base"]),
                         host=str(state.get("host", "127.0.0.1")))


def sandbox_apply(
    snapshot: StackSnapshot, *, restart: bool = False
) -> ApplyResult:
    """Apply to a sandbox (settings from `sandbox_settings`), then reload or restart it.

    A restart (~0.3 s) makes every change visible to the next connection; a reload is what
    production does and takes up to ~2 s for Postfix's idle smtpd processes to turn over.
    A release folder already in the sandbox is never trusted: it is written afresh.
    """
    settings = snapshot.settings
    directory = Path(settings.config_dir).parent
    prepare_dirs(settings)
    running = (directory / _STATE_FILE).exists()
    result = apply_snapshot(snapshot, reload=running and not restart, reuse_release=False)
    if running and restart and result.changed:
        restart_sandbox(directory)
    return result
