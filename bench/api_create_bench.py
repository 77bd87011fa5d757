"""Mailbox creation over the API with one process and with gunicorn workers, and their memory.

    .venv/bin/python bench/api_create_bench.py [--clients 4] [--mailboxes 80] [--workers 1 2]

For each worker count, starts the real `mailadmin serve` on a fresh SQLite instance, creates a
customer with a domain and an API token (the CLI), then C client threads POST
/api/v1/mailboxes (each creation hashes the password: SHA512-CRYPT by default) until N
mailboxes exist. Prints creations per second and the peak resident memory (VmHWM) of every
serving process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "mailadmin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(instance: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    result = subprocess.run([str(SCRIPT), "--instance", str(instance), *args],
                            capture_output=True, text=True, env=env, check=True)
    return result.stdout


def peak_rss_mb(pid: int) -> dict[int, float]:
    """VmHWM of the process and its children, in MiB."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if int(entry.name) == pid or parent == pid:
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    found[int(entry.name)] = int(line.split()[1]) / 1024
    return found


def run(workers: int, clients: int, mailboxes: int) -> None:
    instance = Path(tempfile.mkdtemp(prefix="mailadmin-api-bench-")) / "instance"
    cli(instance, "db", "upgrade")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    command = [str(SCRIPT), "--instance", str(instance), "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
    try:
        assert server.stdout is not None
        while "mailadmin panel on" not in (line := server.stdout.readline()):
            assert line, "the panel did not start"
        setup(instance)
        token = json.loads(cli(instance, "--as", "bench", "token", "create", "bench",
                               "--json"))["token"]
        base = f"http://127.0.0.1:{port}/api/v1"
        counter = iter(range(mailboxes))
        lock = threading.Lock()
        errors: list[str] = []

        def client() -> None:
            opener = urllib.request.build_opener()
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                body = json.dumps({"address": f"user{n}@bench.example",
                                   "password": f"a long password {n}"}).encode()
                request = urllib.request.Request(  # noqa: S310 (the bench's own URL)
                    f"{base}/mailboxes", data=body, method="POST",
                    headers={"Authorization": f"Bearer {token}",
                             "Content-Type": "application/json"})
                try:
                    with opener.open(request, timeout=60) as response:
                        response.read()
                except OSError as exc:
                    errors.append(str(exc))

        threads = [threading.Thread(target=client) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert not errors, errors[:3]
        memory = peak_rss_mb(server.pid)
        label = "waitress, 1 process" if workers == 1 else f"gunicorn, {workers} workers"
        per_process = ", ".join(f"{value:.0f}" for value in sorted(memory.values()))
        print(f"{label:<22} {mailboxes / elapsed:>10.1f} {elapsed:>8.1f}   {per_process}")
    finally:
        server.terminate()
        server.wait(30)


def setup(instance: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    subprocess.run([str(SCRIPT), "--instance", str(instance), "user", "add", "bench",
                    "--role", "customer", "--password-stdin"], input="correct horse 42\n",
                   capture_output=True, text=True, env=env, check=True)
    cli(instance, "domain", "add", "bench.example", "--customer", "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--mailboxes", type=int, default=80)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"{args.clients} API clients creating {args.mailboxes} mailboxes, "
          f"{os.cpu_count()} cores")
    print(f"{'server':<22} {'created/s':>10} {'seconds':>8}   peak RSS per process (MiB)")
    for workers in args.workers:
        run(workers, args.clients, args.mailboxes)


if __name__ == "__main__":
    main()
