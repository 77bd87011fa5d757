"""Stage, validate, switch and reload a rendered configuration.

Layout under ``config_dir``::

    releases/<checksum>/dovecot/...   one complete, validated file set per release
    releases/<checksum>/postfix/...   (with postmap's .db files and compiled Sieve)
    current -> releases/<checksum>    what the servers run (``dovecot -c current/...``)

A release folder only ever appears complete: it is written and compiled under a staging
name, fsynced, then renamed. The servers only see a release once ``current`` is flipped with
``os.replace`` of a fresh symlink, which is atomic; a crash at any earlier point leaves the
old link, hence the old configuration, in force. Files of an existing release are never
rewritten, so the running configuration stays byte-for-byte what it was when a later apply
fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import difflib
import fcntl
import grp
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path

from ..errors import MailadminError
from .doveadm import ensure_secret
from .render import POSTFIX_HASH_MAPS, render, render_release
from .render.opendkim import CONF as OPENDKIM_CONF
from .snapshot import StackSnapshot

#: Files only the servers read; everything else in a release is generated from them.
_ARTEFACT_SUFFIXES = (".db", ".svbin")
_TOOL_TIMEOUT = 300


class ApplyError(MailadminError):
    """Apply failed; the configuration in force is unchanged.

    `stage` is one of "write", "validate", "switch", "reload", "rollback"; `output` is what
    the failing tool printed (Postfix writes most errors to its log, which is included).
    """

    code = "apply_failed"

    def __init__(self, stage: str, message: str, output: str = "") -> None:
        super().__init__(f"{stage} failed: {message}" + (f"\n{output}" if output else ""))
        self.stage = stage
        self.output = output


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    checksum: str
    release_dir: Path
    #: {relative path: text} exactly as written (store it to re-create the release later).
    files: Mapping[str, str]
    validation_output: str
    #: False when this release was already current (nothing switched).
    changed: bool
    previous: str | None
    reloaded: bool
    #: Seconds per stage: write, compile (postmap/sievec), validate, switch, reload.
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ReleaseInfo:
    checksum: str
    path: Path
    mtime: float
    current: bool


@dataclasses.dataclass(frozen=True)
class Tools:
    """Commands used for validation and reload (overridable for odd installations)."""

    doveconf: str = "doveconf"
    doveadm: str = "doveadm"
    postfix: str = "postfix"
    postmap: str = "postmap"
    postconf: str = "postconf"
    sievec: str = "sievec"
    opendkim: str = "opendkim"


# --------------------------------------------------------------------------- helpers


def _run(
    cmd: list[str], *, log: Path | None = None, keep_stdout: bool = True
) -> tuple[int, str]:
    """Run a tool; return (rc, stdout+stderr+new log lines).

    Postfix's commands write their errors to maillog_file rather than stderr when stderr is
    not a terminal, so the lines they append to the log are part of their output.
    """
    offset = log.stat().st_size if log is not None and log.exists() else 0
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=_TOOL_TIMEOUT, check=False,
        )
    except FileNotFoundError as exc:
        return 127, f"{cmd[0]}: not installed ({exc})"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(cmd)}: timed out after {_TOOL_TIMEOUT}s"
    out = ((proc.stdout or "") + proc.stderr).strip()
    if log is not None and log.exists():
        with log.open("rb") as fh:
            fh.seek(offset)
            added = fh.read().decode(errors="replace").strip()
        if added:
            out = f"{out}\n{added}".strip()
    return proc.returncode, out


def _sync_filesystem(path: Path) -> None:
    """Flush every written file under `path` to disk.

    One syncfs(2) of the file system instead of an fsync per file: a release at 100,000
    mailboxes has a thousand Sieve scripts and their binaries, and per-file fsyncs cost
    seconds. Falls back to per-file fsync where syncfs is unavailable.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    syncfs = getattr(libc, "syncfs", None)
    if syncfs is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for p in path.rglob("*"):
        if p.is_file():
            _fsync_path(p)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _postfix_log(release: Path) -> Path | None:
    main_cf = (release / "postfix" / "main.cf").read_text()
    m = re.search(r"^maillog_file = (\S+)$", main_cf, re.M)
    return Path(m.group(1)) if m else None


def ensure_log_dir(log_dir: str | None) -> None:
    """Create the servers' log folder if it is missing (root's, not world-readable: the logs
    name every sender and recipient). Dovecot's log process and Postfix's postlogd open their
    files as root, so nothing else is needed. Raises ApplyError when it cannot be made."""
    if log_dir is None:
        return
    folder = Path(log_dir)
    try:
        if not folder.is_dir():
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplyError("write", f"cannot create the log folder {log_dir}: "
                         f"{exc.strerror or exc}") from None


#: Files and folders of a release that hold password hashes (the mailboxes' and the app
#: passwords'): mode 0640 root:dovecot, or 0600 when not written by root.
SECRET_FILES = frozenset({"dovecot/users"})
SECRET_FOLDERS = ("dovecot/app-passwords/",)


def _dovecot_gid() -> int | None:
    try:
        return grp.getgrnam("dovecot").gr_gid
    except KeyError:
        return None


def _write_tree(staging: Path, files: Mapping[str, str],
                reuse: Mapping[str, Path] | None = None) -> None:
    """Write `files` under `staging`; a file in `reuse` (and its compiled artefact) is a hard
    link to the identical file of the release in force instead (see `_reusable`)."""
    dirs = {staging}
    secret_gid = _dovecot_gid()
    reuse = reuse or {}
    for rel, text in files.items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ApplyError("write", f"refusing file path {rel!r}")
        path = staging / rel
        folder = path.parent
        if folder not in dirs:  # each folder once (a release has a thousand files)
            folder.mkdir(parents=True, exist_ok=True)
            parent = Path(rel).parent
            while parent != Path("."):
                dirs.add(staging / parent)
                parent = parent.parent
        source = reuse.get(rel)
        if source is not None:
            os.link(source, path)
            # only maps and scripts have a compiled form (saves two stats on each other file)
            compiled = rel in POSTFIX_HASH_MAPS or rel.endswith(".sieve")
            for artefact in _artefacts(source) if compiled else ():
                os.link(artefact, path.parent / artefact.name)
            continue
        # flushed to disk as a whole by _sync_filesystem before the release is renamed
        path.write_text(text, encoding="utf-8")
        if rel in SECRET_FILES or rel.startswith(SECRET_FOLDERS):
            # password hashes: readable by root and Dovecot's group only
            if secret_gid is not None and os.geteuid() == 0:
                os.chown(path, 0, secret_gid)
                path.chmod(0o640)
            else:
                path.chmod(0o600)
        else:
            path.chmod(0o644)
        if rel in ("postfix/main.cf", "postfix/master.cf"):
            # Postfix's tools wait (6 x 0.3 s, seen with strace) until main.cf is a couple
            # of seconds old, in case an editor is still writing it. This file is complete
            # and fsynced, so back-date it instead of waiting.
            past = time.time() - 10
            os.utime(path, (past, past))
    for d in dirs:
        d.chmod(0o755)


def _compile(staging: Path, files: Mapping[str, str], tools: Tools,
             reused: Mapping[str, Path] | None = None) -> list[str]:
    """postmap every hash map and sievec every script inside the staging folder, but for
    those linked with their compiled form from the release in force (`reused`)."""
    outputs = []
    reused = reused or {}
    log = _postfix_log(staging)
    pf = staging / "postfix"
    for rel in POSTFIX_HASH_MAPS:
        if rel in reused:
            continue
        rc, out = _run([tools.postmap, "-c", str(pf), f"hash:{staging / rel}"], log=log)
        if rc != 0:
            raise ApplyError("validate", f"postmap {rel} exited {rc}", out)
        if out:
            outputs.append(f"postmap {rel}: {out}")
    # LMTP runs as the vmail user and cannot write next to the scripts, so they must be
    # compiled here; sievec compiles every script in a folder in one run.
    scripts = [rel for rel in files if rel.endswith(".sieve")]
    if scripts and not all(rel in reused for rel in scripts):
        rc, out = _run([tools.sievec, "-c", str(staging / "dovecot" / "dovecot.conf"),
                        str(staging / "dovecot" / "sieve")])
        if rc != 0:
            raise ApplyError("validate", f"sievec exited {rc}", out)
        missing = [rel for rel in scripts
                   if not (staging / rel).with_suffix(".svbin").exists()]
        if missing:
            raise ApplyError("validate", "sievec left scripts uncompiled", "\n".join(missing))
        outputs.append(f"sievec: {len(scripts)} script(s) compiled" + (f": {out}" if out else ""))
        for svbin in (staging / "dovecot" / "sieve").glob("*.svbin"):
            svbin.chmod(0o644)
    return outputs


#: The files whose text decides how every other file is read or compiled (postmap -c reads
#: main.cf, sievec -c reads dovecot.conf): when one of them changes, nothing is reused.
GOVERNING_FILES = ("dovecot/dovecot.conf", "postfix/main.cf", "postfix/master.cf")
_GOVERNING_FILES = GOVERNING_FILES


def _artefacts(source: Path) -> list[Path]:
    """The compiled forms next to a source file: postmap's ``map.db``, sievec's ``.svbin``."""
    found = []
    for candidate in (source.with_name(source.name + ".db"), source.with_suffix(".svbin")):
        if candidate != source and candidate.is_file() and not candidate.is_symlink():
            found.append(candidate)
    return found


def _reusable(config_dir: Path, checksum: str, files: Mapping[str, str],
              base: str | None = None, unchanged: Collection[str] = ()) -> dict[str, Path]:
    """Files of the new release that are byte-equal to those of the release in force.

    One change at 100,000 mailboxes alters one or two of a thousand files; linking the rest
    (with their postmap and sievec output) instead of writing and compiling them again is
    what makes such an apply take a fraction of a second. Files name their own release
    folder, so they are compared with the folder name exchanged. Releases are never written
    in place, so a link shares a file that no apply will change. Sieve scripts are compiled
    as one folder: either every script is reused, or none.
    """
    previous = current_release(config_dir)
    if previous is None or previous == checksum:
        return {}
    old_root = _releases_dir(config_dir) / previous
    if not old_root.is_dir() or old_root.is_symlink():
        return {}
    if base is not None and base == previous:
        # the incremental render took these texts from this very release: no need to read
        # them again (`mailstack.incremental`)
        hinted = {rel: old_root / rel for rel in unchanged
                  if rel in files and rel not in _GOVERNING_FILES}
        if all(path.is_file() and not path.is_symlink() for path in hinted.values()):
            scripts = [rel for rel in files if rel.endswith(".sieve")]
            if not all(rel in hinted for rel in scripts):
                for rel in scripts:
                    hinted.pop(rel, None)
            return hinted

    def same(rel: str) -> Path | None:
        path = old_root / rel
        try:
            if path.is_symlink() or not path.is_file():
                return None
            old = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if previous in old and rel not in _GOVERNING_FILES:
            # it names its release folder: a link would go on naming the previous release
            # after that one is pruned (2.3's passwd-file names the Sieve scripts)
            return None
        return path if files[rel].replace(checksum, previous) == old else None

    if any(rel not in files or same(rel) is None for rel in _GOVERNING_FILES):
        return {}
    reuse = {rel: path for rel in files if rel not in _GOVERNING_FILES
             and (path := same(rel)) is not None}
    scripts = [rel for rel in files if rel.endswith(".sieve")]
    if not all(rel in reuse for rel in scripts):
        for rel in scripts:
            reuse.pop(rel, None)
    return reuse


def _same_postfix_config(config_dir: Path, release: Path) -> bool:
    """main.cf and master.cf of `release` are those of the release in force (validated when
    it was applied), the release folder names aside."""
    previous = current_release(config_dir)
    if previous is None or previous == release.name:
        return False
    old_root = _releases_dir(config_dir) / previous
    try:
        return all(
            (release / rel).read_text().replace(release.name, previous)
            == (old_root / rel).read_text()
            for rel in ("postfix/main.cf", "postfix/master.cf"))
    except OSError:
        return False


def validate_release(release: Path, tools: Tools | None = None, *,
                     postfix_checked: bool = False) -> str:
    """Run the servers' own checkers on a release folder; return their output.

    `postfix_checked`: main.cf and master.cf are those of the release in force (the release
    folder's name aside), which ``postfix check`` passed; its 0.2 s are then saved (it reads
    only those two files and the folders they name, not the maps).
    Raises ApplyError(stage="validate") with the tool's message when one refuses it.
    """
    tools = tools or Tools()
    outputs = []
    rc, out = _run([tools.doveconf, "-n", "-c", str(release / "dovecot" / "dovecot.conf")])
    if rc != 0:
        raise ApplyError("validate", f"doveconf -n exited {rc}", out)
    outputs.append(f"doveconf -n: ok ({len(out.splitlines())} lines)")
    # -n does not open "<file" values (TLS certificate and key); -x expands them. Its stdout
    # would contain the private key, so only its errors are kept.
    rc, out = _run([tools.doveconf, "-x", "-c", str(release / "dovecot" / "dovecot.conf")],
                   keep_stdout=False)
    if rc != 0:
        raise ApplyError("validate", f"doveconf -x exited {rc}", out)
    pf = release / "postfix"
    log = _postfix_log(release)
    rc, out = _run([tools.postconf, "-c", str(pf), "-n"], log=log)
    warnings = [line for line in out.splitlines() if "warning:" in line or "fatal:" in line]
    if rc != 0 or warnings:
        raise ApplyError("validate", f"postconf -n exited {rc}", "\n".join(warnings) or out)
    outputs.append(f"postconf -n: ok ({len(out.splitlines())} lines)")
    if postfix_checked:
        outputs.append("postfix check: main.cf and master.cf as in the release in force")
    else:
        rc, out = _run([tools.postfix, "-c", str(pf), "check"], log=log)
        if rc != 0 or "fatal:" in out or "error:" in out:
            raise ApplyError("validate", f"postfix check exited {rc}", out)
        outputs.append("postfix check: ok" + (f"\n{out}" if out else ""))
    if (release / OPENDKIM_CONF).exists():
        outputs.append(_validate_opendkim(release, tools))
    return "\n".join(outputs)


def _validate_opendkim(release: Path, tools: Tools) -> str:
    """``opendkim -n`` checks the configuration; it does not open the KeyTable, so every key
    file it names is checked here (a missing one would stop OpenDKIM at its next reload)."""
    rc, out = _run([tools.opendkim, "-n", "-x", str(release / OPENDKIM_CONF)])
    if rc != 0:
        raise ApplyError("validate", f"opendkim -n exited {rc}", out)
    missing = []
    for line in (release / "opendkim" / "KeyTable").read_text().splitlines():
        if line and not line.startswith("#"):
            key_file = line.rsplit(":", 1)[-1]
            if not Path(key_file).is_file():
                missing.append(key_file)
    if missing:
        raise ApplyError("validate", "DKIM key files are missing", "\n".join(missing))
    return "opendkim -n: ok"


def _releases_dir(config_dir: Path) -> Path:
    return config_dir / "releases"


def release_dir(config_dir: str | Path, checksum: str) -> Path:
    """The folder of the release `checksum` (it may not exist)."""
    return _releases_dir(Path(config_dir)) / checksum


def current_release(config_dir: str | Path) -> str | None:
    """Checksum of the release in force, or None before the first apply."""
    link = Path(config_dir) / "current"
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    return Path(target).name


def _switch(config_dir: Path, checksum: str) -> None:
    """Point ``current`` at a release atomically (a crash leaves the old or the new link)."""
    tmp = config_dir / f".current.{secrets.token_hex(6)}"
    os.symlink(f"releases/{checksum}", tmp)
    try:
        os.replace(tmp, config_dir / "current")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(config_dir)


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def servers_running(release: Path) -> tuple[bool, bool]:
    """(Dovecot, Postfix) running for this release's base_dir / queue_directory.

    Read from their master pid files, the same ones ``doveadm reload`` and ``postfix
    reload`` use, so a reload is only attempted where it can succeed.
    """
    conf = (release / "dovecot" / "dovecot.conf").read_text()
    base = re.search(r"^base_dir = (\S+)$", conf, re.M)
    main_cf = (release / "postfix" / "main.cf").read_text()
    queue = re.search(r"^queue_directory = (\S+)$", main_cf, re.M)
    dovecot = base is not None and _pid_alive(Path(base.group(1)) / "master.pid")
    postfix = queue is not None and _pid_alive(Path(queue.group(1)) / "pid" / "master.pid")
    return dovecot, postfix


def _reload(config_dir: Path, tools: Tools) -> str:
    current = config_dir / "current"
    outputs = []
    dovecot, postfix = servers_running(current.resolve())
    if dovecot:
        rc, out = _run([tools.doveadm, "-c", str(current / "dovecot" / "dovecot.conf"),
                        "reload"])
        if rc != 0:
            raise ApplyError("reload", f"doveadm reload exited {rc}", out)
        outputs.append("doveadm reload: ok")
    else:
        # the files are in force; Dovecot reads them when it is started
        outputs.append("dovecot: not running, nothing to reload")
    if (current / OPENDKIM_CONF).exists():
        outputs.append(_reload_opendkim(current.resolve()))
    if not postfix:
        outputs.append("postfix: not running, nothing to reload")
        return "\n".join(outputs)
    # Also after a Dovecot-only change: Postfix's smtpd processes keep their connection to
    # the old Dovecot auth process (old passdbs) until they are restarted (lab, section 10).
    rc, out = _run([tools.postfix, "-c", str(current / "postfix"), "reload"],
                   log=_postfix_log(current))
    if rc != 0:
        raise ApplyError("reload", f"postfix reload exited {rc}", out)
    outputs.append("postfix reload: ok")
    return "\n".join(outputs)


def _opendkim_pid(release: Path) -> int | None:
    conf = release / OPENDKIM_CONF
    if not conf.exists():
        return None
    m = re.search(r"^PidFile (\S+)$", conf.read_text(), re.M)
    if m is None:
        return None
    try:
        pid = int(Path(m.group(1)).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # a recycled pid must not be signalled: only an opendkim started from this config folder
    ours = bool(cmdline) and cmdline[0].endswith(b"opendkim") and any(
        str(release.parent.parent).encode() in arg for arg in cmdline)
    return pid if ours else None


def _reload_opendkim(release: Path) -> str:
    """SIGUSR1 makes OpenDKIM re-read its configuration and keys (through ``current``)."""
    pid = _opendkim_pid(release)
    if pid is None:
        return "opendkim: not running, nothing to reload"
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        return "opendkim: not running, nothing to reload"
    return "opendkim reload: ok"


def _activate(
    config_dir: Path,
    checksum: str,
    *,
    reload: bool,
    tools: Tools,
    validation: list[str],
    before_switch: Callable[[Path], None] | None,
) -> tuple[str | None, bool]:
    previous = current_release(config_dir)
    release = _releases_dir(config_dir) / checksum
    if previous == checksum:
        return previous, False
    if before_switch is not None:
        before_switch(release)
    _switch(config_dir, checksum)
    if reload:
        try:
            validation.append(_reload(config_dir, tools))
        except ApplyError as exc:
            if previous is not None:
                # put the old release back in force before reporting
                _switch(config_dir, previous)
                try:
                    _reload(config_dir, tools)
                except ApplyError as again:
                    raise ApplyError(
                        "reload",
                        f"{exc}; and reloading the previous release failed too",
                        again.output,
                    ) from exc
            raise
    return previous, True


# --------------------------------------------------------------------------- public API


def apply_files(
    config_dir: str | Path,
    checksum: str,
    files: Mapping[str, str],
    *,
    reload: bool = True,
    tools: Tools | None = None,
    before_switch: Callable[[Path], None] | None = None,
    keep_releases: int | None = 20,
    progress: Callable[[str], None] | None = None,
    reuse_release: bool = True,
    base: str | None = None,
    unchanged: Collection[str] = (),
) -> ApplyResult:
    """Write (if new), validate, switch to and reload the release `checksum`.

    `base` and `unchanged` come from the incremental render (`mailstack.incremental`): the
    paths whose text is that of the release `base`, linked from it without being read again
    when `base` is still the release in force (else every file is compared as usual).

    `reuse_release=False` rewrites a release folder that exists but is not current instead
    of trusting its files (a sandbox folder may hold files planted by someone else).

    `files` must be the render for ``<config_dir>/releases/<checksum>`` (as `render_release`
    returns, or as stored in a ConfigRevision). `before_switch` is called with the validated
    release folder just before ``current`` flips (tests use it to simulate a crash).
    After a switch, all but the `keep_releases` newest releases are deleted (None: keep all).
    `progress` is called with each stage's name as it starts ("write", "validate", "switch").
    Raises ApplyError; on any failure ``current`` and every file it points to are unchanged.
    """
    tools = tools or Tools()
    config_dir = Path(config_dir)
    if not re.fullmatch(r"[0-9a-f]{64}", checksum):
        raise ApplyError("write", f"not a checksum: {checksum!r}")
    releases = _releases_dir(config_dir)
    releases.mkdir(parents=True, exist_ok=True)
    with _apply_lock(config_dir):
        release = releases / checksum
        if not reuse_release and current_release(config_dir) != checksum and (
                release.is_symlink() or release.exists()):
            if release.is_symlink() or not release.is_dir():
                release.unlink()
            else:
                shutil.rmtree(release)
        # a folder that is not trusted to hold only what we wrote is not linked from either
        return _apply_locked(config_dir, checksum, files, reload=reload, tools=tools,
                             before_switch=before_switch, keep_releases=keep_releases,
                             progress=progress or (lambda _stage: None),
                             incremental=reuse_release, base=base, unchanged=unchanged)


@contextlib.contextmanager
def _apply_lock(config_dir: Path) -> Iterator[None]:
    """One apply at a time per config folder (panel, CLI and a coalescing worker may race).

    flock is released by the kernel when the process dies, so a crash never leaves it held.
    """
    fd = os.open(config_dir / ".apply.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _apply_locked(
    config_dir: Path,
    checksum: str,
    files: Mapping[str, str],
    *,
    reload: bool,
    tools: Tools,
    before_switch: Callable[[Path], None] | None,
    keep_releases: int | None,
    progress: Callable[[str], None],
    incremental: bool = True,
    base: str | None = None,
    unchanged: Collection[str] = (),
) -> ApplyResult:
    releases = _releases_dir(config_dir)
    release = releases / checksum
    validation: list[str] = []
    if current_release(config_dir) == checksum:
        return ApplyResult(checksum, release, files, "already current", False, checksum, False)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress("write")
    if not release.exists():
        staging = releases / f".staging-{checksum[:12]}-{secrets.token_hex(4)}"
        try:
            reuse = (_reusable(config_dir, checksum, files, base, unchanged)
                     if incremental else {})
            _write_tree(staging, files, reuse)
            timings["write"] = time.perf_counter() - t0
            validation += _compile(staging, files, tools, reuse)
            if reuse:
                validation.append(f"{len(reuse)} of {len(files)} files unchanged: linked "
                                  "from the release in force with their compiled forms")
            _sync_filesystem(staging)
            os.rename(staging, release)
            _fsync_path(releases)
            timings["compile"] = time.perf_counter() - t0 - timings["write"]
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        fresh = True
    else:
        fresh = False
    t1 = time.perf_counter()
    progress("validate")
    try:
        validation.append(validate_release(
            release, tools, postfix_checked=fresh and _same_postfix_config(config_dir, release)))
    except ApplyError:
        if fresh:
            shutil.rmtree(release, ignore_errors=True)
        raise
    t2 = time.perf_counter()
    timings["validate"] = t2 - t1
    progress("switch")
    previous, changed = _activate(
        config_dir, checksum, reload=reload, tools=tools, validation=validation,
        before_switch=before_switch,
    )
    timings["switch+reload" if reload else "switch"] = time.perf_counter() - t2
    if changed and keep_releases is not None:
        # the previous release stays (newest first), so a rollback is always possible
        prune_releases(config_dir, keep=max(2, keep_releases))
    return ApplyResult(
        checksum, release, files, "\n".join(validation), changed, previous, reload and changed,
        timings,
    )


def apply_snapshot(
    snapshot: StackSnapshot,
    *,
    reload: bool = True,
    tools: Tools | None = None,
    before_switch: Callable[[Path], None] | None = None,
    progress: Callable[[str], None] | None = None,
    reuse_release: bool = True,
) -> ApplyResult:
    """Render `snapshot` and apply it to ``snapshot.settings.config_dir`` (see apply_files).

    With several mail nodes (a doveadm listener), the doveadm password file the release
    includes is created first if missing (kept outside the release: see `doveadm`).
    """
    if snapshot.settings.doveadm_address is not None:
        ensure_secret(snapshot.settings)
    checksum, files = render_release(snapshot)
    return apply_files(
        snapshot.settings.config_dir, checksum, files,
        reload=reload, tools=tools, before_switch=before_switch, progress=progress,
        reuse_release=reuse_release,
    )


def rollback(
    config_dir: str | Path,
    checksum: str,
    *,
    files: Mapping[str, str] | None = None,
    reload: bool = True,
    tools: Tools | None = None,
    progress: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Put an earlier release back in force (re-validated first).

    When its folder has been pruned, pass the `files` recorded for it to re-create it.
    """
    config_dir = Path(config_dir)
    release = _releases_dir(config_dir) / checksum
    if files is None:
        if not release.is_dir():
            raise ApplyError("rollback", f"no release {checksum} under {config_dir}")
        files = read_release(config_dir, checksum)
    return apply_files(config_dir, checksum, files, reload=reload, tools=tools,
                       progress=progress)


def read_release(config_dir: str | Path, checksum: str) -> dict[str, str]:
    """The source files of a release (without the compiled .db / .svbin artefacts)."""
    release = _releases_dir(Path(config_dir)) / checksum
    return {
        p.relative_to(release).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(release.rglob("*"))
        if p.is_file() and p.suffix not in _ARTEFACT_SUFFIXES
    }


def list_releases(config_dir: str | Path) -> list[ReleaseInfo]:
    """Releases on disk, newest first."""
    config_dir = Path(config_dir)
    cur = current_release(config_dir)
    releases = _releases_dir(config_dir)
    if not releases.is_dir():
        return []
    found = [
        ReleaseInfo(p.name, p, p.stat().st_mtime, p.name == cur)
        for p in releases.iterdir()
        if p.is_dir() and re.fullmatch(r"[0-9a-f]{64}", p.name)
    ]
    return sorted(found, key=lambda r: r.mtime, reverse=True)


def prune_releases(config_dir: str | Path, keep: int = 10) -> list[str]:
    """Delete all but the `keep` newest releases (never the current one); return removed."""
    removed = []
    for info in list_releases(config_dir)[keep:]:
        if not info.current:
            shutil.rmtree(info.path)
            removed.append(info.checksum)
    return removed


def diff_releases(config_dir: str | Path, old: str, new: str) -> str:
    """Unified diff of two releases' source files.

    Each release names its own folder in its files; that path is shown as ``<release>`` so
    the diff shows only real changes.
    """
    config_dir = Path(config_dir)
    root = str(_releases_dir(config_dir))
    return diff_files(read_release(config_dir, old), read_release(config_dir, new),
                      old_root=f"{root}/{old}", new_root=f"{root}/{new}",
                      old_label=old[:12], new_label=new[:12])


def diff_files(
    a: Mapping[str, str],
    b: Mapping[str, str],
    *,
    old_root: str,
    new_root: str,
    old_label: str = "a",
    new_label: str = "b",
) -> str:
    """Unified diff of two file sets; each one's own folder (`*_root`) reads ``<release>``."""
    out: list[str] = []
    for rel in sorted(set(a) | set(b)):
        old_text = a.get(rel, "").replace(old_root, "<release>")
        new_text = b.get(rel, "").replace(new_root, "<release>")
        if old_text != new_text:
            out.extend(
                difflib.unified_diff(
                    old_text.splitlines(keepends=True),
                    new_text.splitlines(keepends=True),
                    fromfile=f"{old_label}/{rel}" if rel in a else "/dev/null",
                    tofile=f"{new_label}/{rel}" if rel in b else "/dev/null",
                )
            )
    return "".join(out)


class RenderOutError(MailadminError):
    """``render --out`` refused its folder; nothing was written."""

    code = "render_out_refused"


def _refuse_links(out: Path) -> None:
    """Refuse an existing output folder that is a link, is not ours, or holds a link."""
    st = out.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise RenderOutError(f"{out} is a symbolic link; give a real folder.")
    if not stat.S_ISDIR(st.st_mode):
        raise RenderOutError(f"{out} exists and is not a folder.")
    if st.st_uid != os.geteuid():
        raise RenderOutError(f"{out} belongs to another user; give a folder of yours.")
    for folder, dirs, names in os.walk(out):  # never follows links
        for name in (*dirs, *names):
            path = Path(folder) / name
            if path.is_symlink():
                raise RenderOutError(
                    f"{out} contains a symbolic link ({path.relative_to(out)}); nothing was "
                    "written. Remove it or choose an empty folder.")


def write_render(snapshot: StackSnapshot, out_dir: str | Path) -> dict[str, str]:
    """Render into `out_dir` for inspection (``mailadmin render --out DIR``).

    The files refer to `out_dir` itself, nothing is validated, compiled or switched, and
    nothing live changes. They are written into a fresh private folder beside `out_dir`,
    which then replaces it by rename: nothing is ever written through a link someone planted
    in `out_dir` (an existing `out_dir` holding a link, or being one, is refused). Returns
    the files written.
    """
    out = Path(os.path.abspath(out_dir))
    files = render(snapshot, str(out))
    exists = os.path.lexists(out)
    if exists:
        _refuse_links(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.render-", dir=out.parent))
    try:
        _write_tree(staging, files)
        if exists:
            old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
            os.rename(out, old)
            os.rename(staging, out)
            shutil.rmtree(old)
        else:
            os.rename(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return files
