"""The built wheel, installed in a fresh virtual environment, migrates a database and serves.

The templates and the Alembic scripts live at the top of the repository, outside the Python
packages; this proves the build maps them into the wheel and the code finds them there. Every
command runs with the working directory in tmp_path and without PYTHONPATH, so nothing can be
picked up from the checkout.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mailadmin import migrate

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.wheel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k != "PYTHONPATH" and not k.startswith("MAILADMIN_")}


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (and its dependencies) installed; returns its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    # Without isolation the build uses the hatchling of the test environment (test extras),
    # so no package index is needed for the build itself.
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         str(work / "dist"), str(REPO)], cwd=work)
    wheels = list((work / "dist").glob("mailadmin-*.whl"))
    assert len(wheels) == 1, wheels
    run([sys.executable, "-m", "venv", str(work / "venv")], cwd=work)
    bin_dir = work / "venv" / "bin"
    # Dependencies come from the index and find-links pip is configured with.
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheels[0])], cwd=work)
    return bin_dir


def test_wheel_runs_from_site_packages(installed: Path, tmp_path: Path) -> None:
    where = run([str(installed / "python"), "-c",
                 "import mailadmin.migrate, panel; "
                 "print(mailadmin.migrate.__file__); print(panel.templates_dir()); "
                 "print(mailadmin.migrate.MIGRATIONS_DIR)"], cwd=tmp_path).split()
    site = installed.parent / "lib"
    for path in where:
        assert Path(path).is_relative_to(site), where
        assert not Path(path).is_relative_to(REPO), where
    assert (Path(where[1]) / "auth" / "login.html").is_file() or any(
        Path(where[1]).rglob("login*.html")), where[1]
    assert (Path(where[2]) / "env.py").is_file()
    # The help centre's articles are package data: the wheel carries every one of them.
    articles = Path(where[0]).parent / "help" / "articles"
    shipped = {p.name for p in (REPO / "mailadmin" / "help" / "articles").glob("*.md")}
    assert len(shipped) >= 25
    assert {p.name for p in articles.glob("*.md")} == shipped


def test_wheel_migrates_and_serves(installed: Path, tmp_path: Path) -> None:
    database = tmp_path / "wheel.db"
    env = {**clean_env(), "MAILADMIN_DATABASE_URL": f"sqlite:///{database}"}
    instance = tmp_path / "instance"
    run([str(installed / "mailadmin"), "--instance", str(instance), "db", "upgrade"],
        cwd=tmp_path, env=env)
    with sqlite3.connect(database) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert revision == migrate.head_revision()
    assert {"panel_users", "domains", "mailboxes", "help_articles"} <= tables
    found = json.loads(run([str(installed / "mailadmin"), "--instance", str(instance), "help",
                            "search", "503", "--json"], cwd=tmp_path, env=env))
    assert found[0]["slug"] == "503-valid-rcpt-sender-verification"

    port = free_port()
    process = subprocess.Popen(
        [str(installed / "mailadmin"), "--instance", str(instance), "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        page = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
                    assert r.status == 200
                    page = r.read().decode()
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                time.sleep(0.2)
        assert '<form method="post"' in page, page[:2000]
        assert 'name="username"' in page and 'name="password"' in page
        assert 'name="csrf_token"' in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/help/pop-vs-imap", timeout=5) as r:
            assert r.status == 200
            assert "POP3 or IMAP" in r.read().decode()
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert "mailadmin panel on" in output, output
