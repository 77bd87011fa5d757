"""Mailbox creation over the API with one process and with gunicorn workers, and their memory.

    .venv/bin/python bench/api_create_bench.py [--clients 1 2 4] [--mailboxes 60]
        [--workers 1 2]

For each worker count, starts the real `mailadmin serve` on a fresh SQLite instance, creates a
customer with a domain and an API token (the CLI), then for each client count C, C client
threads (one kept-alive `http.client` connection each, all with the same token) POST
/api/v1/mailboxes until N more mailboxes exist; each creation hashes the password
(SHA512-CRYPT, 100,000 rounds, by default). Prints creations per second, the server's CPU
time per creation (every serving process, from /proc), the 1-minute load average when the run
started, and the peak resident memory (VmHWM) of every serving process after the last run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_concurrency_bench import cpu_seconds, serving_pids

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


def run(workers: int, client_counts: list[int], mailboxes: int) -> None:
    instance = Path(tempfile.mkdtemp(prefix="mailadmin-api-bench-")) / "instance"
    cli(instance, "db", "upgrade")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    command = [str(SCRIPT), "--instance", str(instance), "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
    label = "waitress, 1 process" if workers == 1 else f"gunicorn, {workers} workers"
    try:
        assert server.stdout is not None
        while "mailadmin panel on" not in (line := server.stdout.readline()):
            assert line, "the panel did not start"
        setup(instance)
        token = json.loads(cli(instance, "--as", "bench", "token", "create", "bench",
                               "--json"))["token"]
        time.sleep(1)  # gunicorn's workers boot after the master answers
        pids = serving_pids(server.pid)
        first = 0
        for clients in client_counts:
            counter = iter(range(first, first + mailboxes))
            first += mailboxes
            errors: list[str] = []
            threads = [threading.Thread(target=create, args=(port, token, counter, errors))
                       for _ in range(clients)]
            load = os.getloadavg()[0]
            cpu = cpu_seconds(pids)
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pids) - cpu
            assert not errors, errors[:3]
            print(f"{label:<22} {clients:>7} {mailboxes / elapsed:>10.1f} "
                  f"{1000 * cpu / mailboxes:>12.1f} {load:>5.2f}", flush=True)
        memory = peak_rss_mb(server.pid)
        per_process = ", ".join(f"{value:.0f}" for value in sorted(memory.values()))
        print(f"{label:<22} peak RSS per process (MiB): {per_process}", flush=True)
    finally:
        server.terminate()
        server.wait(30)


_next_lock = threading.Lock()


def create(port: int, token: str, counter: t.Iterator[int], errors: list[str]) -> None:
    """One API client: creates mailboxes numbered from `counter` until it runs out."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with _next_lock:
            n = next(counter, None)
        if n is None:
            connection.close()
            return
        body = json.dumps({"address": f"user{n}@bench.example",
                           "password": f"a long password {n}"})
        try:
            connection.request("POST", "/api/v1/mailboxes", body=body,
                               headers={"Authorization": f"Bearer {token}",
                                        "Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                errors.append(str(response.status))
        except OSError as exc:
            errors.append(str(exc))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def setup(instance: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    subprocess.run([str(SCRIPT), "--instance", str(instance), "user", "add", "bench",
                    "--role", "customer", "--password-stdin"], input="correct horse 42\n",
                   capture_output=True, text=True, env=env, check=True)
    cli(instance, "domain", "add", "bench.example", "--customer", "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--mailboxes", type=int, default=60, help="per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"API clients creating {args.mailboxes} mailboxes per run, {os.cpu_count()} cores")
    print(f"{'server':<22} {'clients':>7} {'created/s':>10} {'srv cpu ms':>12} {'load':>5}")
    for workers in args.workers:
        run(workers, args.clients, args.mailboxes)


if __name__ == "__main__":
    main()
