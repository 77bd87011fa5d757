"""The sandbox with Dovecot 2.4 from a Debian 13 chroot (`chroot24`) and the host's Postfix.

Same layout, same ports and the same state file as `sandbox`: the sandbox folder is
bind-mounted into the chroot at its own absolute path, so the rendered release, the mail
folders and Dovecot's unix sockets (LMTP, SASL, quota-status, used by the host's Postfix) are
one set of files seen from both sides. Dovecot runs as ``chroot ROOT dovecot -F`` in its own
process group; ``chroot`` execs Dovecot, so the child's pid is Dovecot's master. Postfix stops
first, then Dovecot, then the bind mount goes (lab 2: never delete a chroot with it active).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from ..mailstack.apply import ApplyResult, apply_snapshot
from ..mailstack.snapshot import StackPorts, StackSnapshot
from .chroot24 import Chroot
from .sandbox import (
    _CHILDREN,
    _STATE_FILE,
    SandboxError,
    SandboxInfo,
    prepare_dirs,
    sandbox_paths,
    stop_sandbox,
    wait_for_ports,
)


def start_sandbox24(directory: str | Path, port_base: int, chroot: Chroot, *,
                    host: str = "127.0.0.1") -> SandboxInfo:
    """Start the chroot's Dovecot 2.4 and the host's Postfix from ``<directory>/config/current``.

    `directory` must already be shared with the chroot (`Chroot.share`) and applied with
    `sandbox24_apply` (or, for a mail node, `services.nodes.apply_on_node` with the chroot's
    tools). Returns once every port accepts connections on `host`.
    """
    directory = Path(directory).absolute()
    dovecot_conf, postfix_dir = sandbox_paths(directory)
    if not dovecot_conf.exists():
        raise SandboxError(f"nothing applied under {directory}/config yet")
    stop_sandbox(directory)  # a crashed earlier run must not hold the ports
    ports = StackPorts.from_base(port_base)
    t0 = time.monotonic()
    dov = subprocess.Popen(
        ["chroot", str(chroot.root), "dovecot", "-F", "-c", str(dovecot_conf)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _CHILDREN[dov.pid] = dov
    (directory / _STATE_FILE).write_text(json.dumps(
        {"dovecot_pid": dov.pid, "port_base": port_base, "dovecot_conf": str(dovecot_conf),
         "chroot": str(chroot.root), "host": host}
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
        raise SandboxError(
            f"Dovecot 2.4 sandbox did not come up: {err.decode(errors='replace')}"
        ) from None
    link = directory / "config" / "current"
    return SandboxInfo(directory, ports, dov.pid, Path(os.readlink(link)).name,
                       time.monotonic() - t0)


def stop_sandbox24(
    directory: str | Path, chroot: Chroot, *, dovecot_pid: int | None = None,
    unshare: bool = True,
) -> None:
    """Postfix, then Dovecot's process group (`sandbox.stop_sandbox`), then the bind mount.

    `dovecot_pid` (from `SandboxInfo`) also stops a Dovecot this process started when the
    sandbox folder's state file is gone, so a damaged folder cannot leave the master running
    (and the bind mount busy).
    """
    stop_sandbox(directory)
    child = _CHILDREN.pop(dovecot_pid, None) if dovecot_pid is not None else None
    if child is not None and child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    if unshare:
        chroot.unshare(directory)


def restart_sandbox24(directory: str | Path, chroot: Chroot) -> SandboxInfo:
    directory = Path(directory).absolute()
    state = json.loads((directory / _STATE_FILE).read_text())
    return start_sandbox24(directory, int(state["port_base"]), chroot,
                           host=str(state.get("host", "127.0.0.1")))


def sandbox24_apply(
    snapshot: StackSnapshot, chroot: Chroot, *, restart: bool = False
) -> ApplyResult:
    """`sandbox.sandbox_apply` with the chroot's doveconf / sievec / doveadm.

    The host's 2.3 tools cannot read a 2.4 config (``Unknown setting:
    dovecot_config_version``), so validation, Sieve compilation and ``doveadm reload`` run
    inside the chroot; postmap, postconf and ``postfix reload`` are the host's.
    """
    settings = snapshot.settings
    directory = Path(settings.config_dir).parent
    prepare_dirs(settings)
    running = (directory / _STATE_FILE).exists()
    result = apply_snapshot(snapshot, reload=running and not restart, tools=chroot.tools())
    if running and restart and result.changed:
        restart_sandbox24(directory, chroot)
    return result
