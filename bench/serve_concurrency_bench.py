"""Concurrent clients on the mailbox list: one waitress process against gunicorn workers.

    .venv/bin/python bench/serve_concurrency_bench.py [--mailboxes 100000] [--clients 8]
        [--requests 60] [--workers 1 2]

Seeds N mailboxes into a SQLite instance (the embedded default), then for each worker count
starts the real `mailadmin serve` (1: waitress, the default; more: `--workers N`, gunicorn) and
lets C client processes, each signed in, fetch random 50-row pages of /mailboxes as fast as the
server answers. Prints per-request latency percentiles and the throughput.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import multiprocessing
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mailbox_list_bench import PASSWORD, seed

SCRIPT = Path(sys.executable).parent / "mailadmin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client(args: tuple[str, int, int, int]) -> list[float]:
    base, requests, pages, seed_value = args
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base}/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    form = urllib.parse.urlencode(
        {"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)}).encode()
    assert opener.open(f"{base}/login", data=form, timeout=30).geturl().endswith("/dashboard")
    rng = random.Random(seed_value)
    timings = []
    for _ in range(requests):
        url = f"{base}/mailboxes?page={rng.randint(1, pages)}"
        started = time.perf_counter()
        with opener.open(url, timeout=60) as response:
            response.read()
            assert response.status == 200
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(share * (len(sorted_values) - 1)))]


def run(instance: Path, workers: int, clients: int, requests: int, pages: int) -> None:
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
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.build_opener().open(f"{base}/login", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        with multiprocessing.Pool(clients) as pool:
            pool.map(client, [(base, 5, pages, n) for n in range(clients)])  # warm up
            started = time.perf_counter()
            results = pool.map(client, [(base, requests, pages, 100 + n) for n in range(clients)])
            elapsed = time.perf_counter() - started
        timings = sorted(value for result in results for value in result)
        label = "waitress, 1 process" if workers == 1 else f"gunicorn, {workers} workers"
        print(f"{label:<22} {statistics.median(timings):>8.1f} {percentile(timings, 0.95):>8.1f} "
              f"{percentile(timings, 0.99):>8.1f} {timings[-1]:>8.1f} "
              f"{len(timings) / elapsed:>8.1f}")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=60, help="per client")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    instance = Path(tempfile.mkdtemp(prefix="mailadmin-serve-bench-")) / "instance"
    instance.mkdir(mode=0o700)
    seed(f"sqlite:///{instance / 'mailadmin.db'}", args.mailboxes)
    pages = max(1, args.mailboxes // 50)
    print(f"{args.clients} clients x {args.requests} requests, 50-row pages of "
          f"{args.mailboxes:,} mailboxes (SQLite), {os.cpu_count()} cores")
    print(f"{'server':<22} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8}")
    for workers in args.workers:
        run(instance, workers, args.clients, args.requests, pages)


if __name__ == "__main__":
    main()
