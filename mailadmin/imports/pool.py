"""Hashing and checking many mailbox passwords on every core.

An import of plaintext passwords spends its time in the hash function (60-110 ms a password,
see `mailadmin.hashing`), which holds Python's GIL; processes spread it over the cores.

A single-threaded program (the ``mailadmin`` command) forks its workers; one with threads (the
panel) takes them from a fork server, which imports the program's main module again: it must
be safe to import (its work under ``if __name__ == "__main__":``), as ``mailadmin serve`` is.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import typing as t
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from ..hashing import hash_mailbox_password, verify_mailbox_password

#: Below this many passwords a pool costs more to start than it saves.
POOL_THRESHOLD = 8
_CHUNK = 16

Progress = Callable[[int], None]
T = t.TypeVar("T")


def _executor(processes: int) -> ProcessPoolExecutor:
    # A forked child starts at once with everything imported. But a child forked from a
    # process with other threads (the panel's server) can inherit a lock another thread held,
    # so there the children come from a fork server instead.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context(method))


def _hash_chunk(passwords: Sequence[str], scheme: str) -> list[str]:
    return [hash_mailbox_password(p, scheme) for p in passwords]  # type: ignore[arg-type]


def _verify_chunk(pairs: Sequence[tuple[str, str]]) -> list[bool]:
    return [verify_mailbox_password(password, stored) for password, stored in pairs]


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def workers(processes: int | None = None) -> int:
    return max(1, processes or os.cpu_count() or 1)


class PasswordPool:
    """Hashes (`hash_many`) and verifies (`verify_many`) over `processes` processes (default:
    one per core), telling `progress` how many passwords each finished chunk held."""

    def __init__(self, processes: int | None = None, progress: Progress | None = None) -> None:
        self.processes = workers(processes)
        self.progress = progress

    def _tell(self, count: int) -> None:
        if self.progress is not None:
            self.progress(count)

    def hash_many(self, passwords: Sequence[str], scheme: str) -> list[str]:
        if len(passwords) < POOL_THRESHOLD or self.processes == 1:
            hashed = []
            for password in passwords:
                hashed.append(hash_mailbox_password(password, scheme))  # type: ignore[arg-type]
                self._tell(1)
            return hashed
        result: list[str] = []
        with _executor(self.processes) as pool:
            futures = [pool.submit(_hash_chunk, chunk, scheme) for chunk in _chunks(passwords)]
            for future in futures:
                done = future.result()
                result.extend(done)
                self._tell(len(done))
        return result

    def verify_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        if len(pairs) < POOL_THRESHOLD or self.processes == 1:
            return _verify_chunk(pairs)
        result: list[bool] = []
        with _executor(self.processes) as pool:
            for done in pool.map(_verify_chunk, _chunks(pairs)):
                result.extend(done)
        return result
