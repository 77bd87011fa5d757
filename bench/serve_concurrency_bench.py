"""Concurrent clients on the mailbox list: one waitress process against gunicorn workers.

    .venv/bin/python bench/serve_concurrency_bench.py [--mailboxes 20000] [--clients 8]
        [--requests 100] [--workers 1 2 3 4] [--threads N]

Seeds N mailboxes into a SQLite instance (the embedded default), then for each worker count
starts the real `mailadmin serve` (1: waitress, the default; more: `--workers N`, gunicorn) and
lets C client processes, each signed in, fetch random 50-row pages of /mailboxes as fast as the
server answers, all starting together.

The clients are light on purpose (they share the cores with the server): `http.client` on one
kept-alive connection each, the session cookie copied by hand, no parsing of the page. Each
client counts its own CPU time, and the bench reads the server's (every serving process, from
/proc/<pid>/stat) over the timed part, so the output says what one request costs the server
and the clients in CPU milliseconds, and the bound that puts on latency: C clients in a closed
loop on K cores cannot see a mean latency below C x (server + client CPU per request) / K.
Prints latency percentiles, throughput, those costs, the 1-minute load average when the run
started, and the peak resident memory (VmHWM) of every serving process.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mailbox_list_bench import PASSWORD, seed

SCRIPT = Path(sys.executable).parent / "mailadmin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COOKIE = re.compile(r"(mailadmin_session=[^;]*)")
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One browser: a kept-alive connection and the session cookie."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, bytes]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle kept-alive connection: open another
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
        cookie = response.getheader("Set-Cookie")
        if cookie and (match := COOKIE.search(cookie)):
            self.cookie = match.group(1)
        return response.status, response.getheader("Location") or "", data

    def sign_in(self) -> None:
        status, _, page = self.request("GET", "/login")
        token = CSRF.search(page.decode())
        assert status == 200 and token, status
        form = urllib.parse.urlencode(
            {"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)})
        status, location, _ = self.request("POST", "/login", form)
        assert status == 302 and location.endswith("/dashboard"), (status, location)


def client(port: int, requests: int, pages: int, seed_value: int,
           barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    browser = Client(port)
    browser.sign_in()
    rng = random.Random(seed_value)
    for _ in range(5):  # warm up this connection and the server's caches
        assert browser.request("GET", f"/mailboxes?page={rng.randint(1, pages)}")[0] == 200
    paths = [f"/mailboxes?page={rng.randint(1, pages)}" for _ in range(requests)]
    barrier.wait()
    cpu = time.process_time()
    timings = []
    for path in paths:
        started = time.perf_counter()
        status, _, _ = browser.request("GET", path)
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    results.put((timings, time.process_time() - cpu))


def serving_pids(pid: int) -> list[int]:
    """The server process and its children (gunicorn's workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def peak_rss_mib(pids: list[int]) -> list[float]:
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return peaks


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(share * (len(sorted_values) - 1)))]


def wait_for_server(server: subprocess.Popen[str], port: int) -> list[str]:
    """Wait until the panel answers; returns the list its later output lines go to."""
    assert server.stdout is not None
    stdout = server.stdout
    while "mailadmin panel on" not in (line := stdout.readline()):
        assert line, "the panel did not start"
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(stdout.readline, "")), daemon=True).start()
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/login")
            connection.getresponse().read()
            connection.close()
            break
        except OSError:
            time.sleep(0.1)
    return output


def run(instance: Path, workers: int, threads: int | None, clients: int, requests: int,
        pages: int) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_")}
    command = [str(SCRIPT), "--instance", str(instance), "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    if threads is not None:
        command += ["--threads", str(threads)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
    output: list[str] = []
    try:
        output = wait_for_server(server, port)
        time.sleep(1)  # gunicorn's workers boot after the master answers
        pids = serving_pids(server.pid)
        context = multiprocessing.get_context("fork")
        barrier = context.Barrier(clients + 1)
        results: multiprocessing.Queue = context.Queue()
        processes = [context.Process(target=client,
                                     args=(port, requests, pages, 100 + n, barrier, results))
                     for n in range(clients)]
        for process in processes:
            process.start()
        load = os.getloadavg()[0]
        barrier.wait(timeout=120)
        server_cpu = cpu_seconds(pids)
        started = time.perf_counter()
        outcomes = [results.get(timeout=600) for _ in processes]
        elapsed = time.perf_counter() - started
        server_cpu = cpu_seconds(pids) - server_cpu
        for process in processes:
            process.join(30)
        timings = sorted(value for result, _ in outcomes for value in result)
        client_cpu = sum(cpu for _, cpu in outcomes)
        count = len(timings)
        server_ms = 1000 * server_cpu / count
        client_ms = 1000 * client_cpu / count
        cores = os.cpu_count() or 1
        bound = clients * (server_ms + client_ms) / cores
        label = ("waitress, 1 process" if workers == 1
                 else f"gunicorn, {workers} workers")
        if threads is not None:
            label += f", {threads} thr"
        memory = " ".join(f"{value:.0f}" for value in peak_rss_mib(serving_pids(server.pid)))
        print(f"{label:<27} {statistics.median(timings):>6.1f} {percentile(timings, 0.95):>6.1f} "
              f"{percentile(timings, 0.99):>6.1f} {count / elapsed:>6.1f} {server_ms:>7.1f} "
              f"{client_ms:>7.1f} {bound:>7.1f} {load:>5.2f}   {memory}", flush=True)
    except BaseException:
        print("".join(output[-60:]), file=sys.stderr)
        raise
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--threads", type=int,
                        help="`mailadmin serve --threads` (default: its own)")
    args = parser.parse_args()
    instance = Path(tempfile.mkdtemp(prefix="mailadmin-serve-bench-")) / "instance"
    instance.mkdir(mode=0o700)
    seed(f"sqlite:///{instance / 'mailadmin.db'}", args.mailboxes)
    pages = max(1, args.mailboxes // 50)
    print(f"{args.clients} clients x {args.requests} requests, 50-row pages of "
          f"{args.mailboxes:,} mailboxes (SQLite), {os.cpu_count()} cores")
    print("CPU ms: per request, over the timed part; bound: the lowest mean latency those "
          "costs allow (clients x CPU / cores); load: 1-minute load average before the run")
    print(f"{'server':<27} {'p50':>6} {'p95':>6} {'p99':>6} {'req/s':>6} {'srv cpu':>7} "
          f"{'cli cpu':>7} {'bound':>7} {'load':>5}   peak RSS per process (MiB)")
    for workers in args.workers:
        run(instance, workers, args.threads, args.clients, args.requests, pages)


if __name__ == "__main__":
    main()
