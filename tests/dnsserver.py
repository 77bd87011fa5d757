"""A real DNS server on 127.0.0.1 for the tests: Debian's dnsmasq, run from a file we write.

dnsmasq answers only from the records we give it (``no-resolv``, ``no-hosts``, no system
config) and, with ``local=/<zone>/``, says NXDOMAIN for every other name in those zones, the
way an authoritative server would. Changing the records restarts it on the same port (TXT and
MX records cannot be reloaded with SIGHUP).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_dnsmasq() -> str:
    path = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists()
                                       else None)
    if path is None:
        if IN_CI:
            pytest.fail("dnsmasq is needed in CI (Debian package dnsmasq-base)")
        pytest.skip("dnsmasq not installed (Debian package dnsmasq-base)")
    return path


def free_udp_tcp_port(start: int = 45000, stop: int = 49999) -> int:
    first = start + (os.getpid() * 7) % (stop - start)
    for port in [*range(first, stop), *range(start, first)]:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
                with socket.socket() as tcp:
                    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    tcp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for the DNS server")


def _txt_strings(value: str) -> str:
    """A long value (a DKIM key) as quoted strings of at most 255 characters; a short one as
    before (unquoted: a comma in it separates strings)."""
    if len(value) <= 255:
        return value
    return ",".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


class LocalDns:
    def __init__(self, folder: Path, zones: tuple[str, ...] = ("test",)) -> None:
        self.binary = require_dnsmasq()
        self.folder = folder
        self.zones = zones
        self.port = free_udp_tcp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.txt: dict[str, list[str]] = {}
        self.mx: dict[str, list[str]] = {}

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serve(self, *, txt: dict[str, list[str]] | None = None,
              mx: dict[str, list[str]] | None = None, extra: list[str] | None = None) -> None:
        """(Re)start with exactly these records; `extra` are further dnsmasq lines
        (``cname=``, ``srv-host=``, ``ptr-record=``, ``host-record=``)."""
        self.txt = dict(txt or {})
        self.mx = dict(mx or {})
        self.stop()
        conf = self.folder / "dnsmasq.conf"
        lines = [f"port={self.port}", "listen-address=127.0.0.1", "bind-interfaces",
                 "no-resolv", "no-hosts", "cache-size=0"]
        lines += [f"local=/{zone}/" for zone in self.zones]
        for name, values in self.txt.items():
            lines += [f"txt-record={name},{_txt_strings(value)}" for value in values]
        for name, hosts in self.mx.items():
            lines += [f"mx-host={name},{host},{10 + i}" for i, host in enumerate(hosts)]
        lines += extra or []
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [self.binary, f"--conf-file={conf}", "--keep-in-foreground", "--pid-file",
             "--user=nobody", "--log-facility=-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dnsmasq exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None


def zone_records(zone: str) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Zone-file lines (``name. TTL IN TYPE data``: MX, TXT, CNAME, SRV, PTR, A) as the
    txt / mx / extra arguments of `LocalDns.serve`: what a customer pastes into a DNS
    provider's zone, served by dnsmasq."""
    import re

    txt: dict[str, list[str]] = {}
    mx: dict[str, list[str]] = {}
    extra: list[str] = []
    for line in zone.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        name, _ttl, _class, rtype, data = line.split(None, 4)
        name = name.rstrip(".")
        if rtype == "TXT":
            txt.setdefault(name, []).append("".join(re.findall(r'"([^"]*)"', data)))
        elif rtype == "MX":
            mx.setdefault(name, []).append(data.split()[1].rstrip("."))
        elif rtype == "CNAME":
            extra.append(f"cname={name},{data.rstrip('.')}")
        elif rtype == "SRV":
            priority, weight, port, target = data.split()
            extra.append(f"srv-host={name},{target.rstrip('.')},{port},{priority},{weight}")
        elif rtype == "PTR":
            extra.append(f"ptr-record={name},{data.rstrip('.')}")
        elif rtype == "A":
            extra.append(f"host-record={name},{data}")
        else:
            raise ValueError(f"record type {rtype} is not served by the test DNS server")
    return txt, mx, extra
