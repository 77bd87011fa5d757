"""`mailadmin serve --workers N` and `--tls-cert/--tls-key`: real processes on real ports."""

from __future__ import annotations

import http.cookiejar
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .test_serve import free_port
from .web import csrf_token

SCRIPT = Path(sys.executable).parent / "mailadmin"


@contextmanager
def serving(instance: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    process = subprocess.Popen(
        [str(SCRIPT), "--instance", str(instance), "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=instance.parent,
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
        yield process, output
    finally:
        process.terminate()
        process.wait(20)


def sign_in(opener: urllib.request.OpenerDirector, base: str, output: str) -> str:
    user = re.search(r"user name: (\S+)", output)
    password = re.search(r"password:\s+(\S+)", output)
    assert user and password, output
    page = ""
    for _ in range(100):
        try:
            page = opener.open(f"{base}/login", timeout=5).read().decode()
            break
        except OSError:
            time.sleep(0.1)
    form = urllib.parse.urlencode({
        "username": user.group(1), "password": password.group(1), "csrf_token": csrf_token(page),
    }).encode()
    # over HTTPS, Flask-WTF also checks that the form came from this site, as browsers tell
    request = urllib.request.Request(  # noqa: S310 (the test's own https URL)
        f"{base}/login", data=form, headers={"Referer": f"{base}/login"})
    dashboard = opener.open(request, timeout=10)
    assert dashboard.geturl().endswith("/dashboard")
    return dashboard.read().decode()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the command name may hold spaces; the parent pid follows its closing parenthesis
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_workers_serve_in_several_processes_sharing_one_sqlite_database(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path / "instance", "--port", str(port), "--workers", "2") as (process, out):
        assert f"http://127.0.0.1:{port}/ (2 worker processes" in out, out
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://127.0.0.1:{port}"
        assert "admin · admin" in sign_in(opener, base, out)
        # the session is server-side in the shared database: every worker knows it
        for _ in range(20):
            page = opener.open(f"{base}/dashboard", timeout=10)
            assert page.geturl().endswith("/dashboard")
        deadline = time.monotonic() + 10
        while len(children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children(process.pid)) == 2


def test_tls_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "panel.crt", tmp_path / "panel.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    port = free_port()
    args = ("--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key))
    with serving(tmp_path / "instance", *args) as (_process, out):
        assert f"https://127.0.0.1:{port}/" in out, out
        context = ssl.create_default_context(cafile=str(cert))
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar), urllib.request.HTTPSHandler(context=context))
        assert "admin · admin" in sign_in(opener, f"https://127.0.0.1:{port}", out)
        # over HTTPS the session cookie is Secure
        assert all(cookie.secure for cookie in jar), [c.name for c in jar]
        # plain HTTP on the TLS port does not get the panel
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5).read()
        except OSError:
            pass
        else:
            raise AssertionError("plain HTTP was answered on the TLS port")


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert = tmp_path / "panel.crt"
    cert.write_text("x")
    result = subprocess.run(
        [str(SCRIPT), "--instance", str(tmp_path / "instance"), "serve", "--tls-cert", str(cert)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
