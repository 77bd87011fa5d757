"""Classify many files in one run, on every core when there are enough of them.

``mailadmin diagnose`` is given hundreds of bounce files at a time (a mailbox of
returned mail exported to a folder). Classifying is pure CPU work per file, so
past a few dozen files the work is shared between forked worker processes that
inherit the loaded catalogue; results come back in the order of the names.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence

from .catalogue import load_catalogue
from .classify import Finding, classify
from .parse import MAX_INPUT

#: Below this many files a worker pool costs more than it saves.
PARALLEL_FROM = 32
_CHUNK = 8

#: (name, findings) or (name, why the file could not be read)
Result = tuple[str, list[Finding] | str]


def read_limited(name: str) -> bytes:
    # Never read more than the classifier looks at: a 10 GB file costs 1 MB.
    with open(name, "rb") as handle:
        return handle.read(MAX_INPUT)


def _classify_file(name: str) -> Result:
    try:
        data = read_limited(name)
    except OSError as exc:
        return name, str(exc.strerror or exc)
    return name, classify(data)


def _workers(count: int) -> int:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    if count < PARALLEL_FROM or usable < 2:
        return 1
    return min(usable, 8, count // _CHUNK)


def classify_files(names: Sequence[str]) -> Iterator[Result]:
    """Classify each named file; yields results in the order of ``names``."""
    workers = _workers(len(names))
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(_classify_file, names)
        return
    load_catalogue()  # compiled once here; the forked workers share it
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_classify_file, names, chunksize=_CHUNK)
