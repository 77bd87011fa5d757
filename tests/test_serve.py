"""`mailadmin serve` end to end: a real process, a real port, the printed admin signs in."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .web import csrf_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_creates_admin_and_signs_in(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    script = Path(sys.executable).parent / "mailadmin"
    process = subprocess.Popen(
        [str(script), "--instance", str(tmp_path / "instance"), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        output = ""
        deadline = time.monotonic() + 60
        while "mailadmin panel on" not in output and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output += line
        user = re.search(r"user name: (\S+)", output)
        password = re.search(r"password:\s+(\S+)", output)
        assert user and password, output
        assert f"http://127.0.0.1:{port}/" in output

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                page = opener.open(f"{base}/login", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        form = urllib.parse.urlencode({
            "username": user.group(1), "password": password.group(1),
            "csrf_token": csrf_token(page),
        }).encode()
        dashboard = opener.open(f"{base}/login", data=form, timeout=10)
        assert dashboard.geturl().endswith("/dashboard")
        assert "admin · admin" in dashboard.read().decode()
        assert (tmp_path / "instance" / "mailadmin.db").exists()
    finally:
        process.terminate()
        process.wait(10)

    # A second start finds the admin and prints no password.
    second = subprocess.Popen(
        [str(script), "--instance", str(tmp_path / "instance"), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    try:
        assert second.stdout is not None
        line = second.stdout.readline()
        assert "mailadmin panel on" in line, line
    finally:
        second.terminate()
        second.wait(10)
