"""Any input gives findings or nothing, within bounded time, and never raises."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailadmin.diagnostics import Finding, classify

from ..databases import in_ci
from .conftest import CORPUS

SAMPLES = sorted((CORPUS / "bounces" / "eml").glob("*.eml"))[::7] if CORPUS.is_dir() else []


def _check(findings: list[Finding]) -> None:
    assert isinstance(findings, list)
    for finding in findings:
        assert finding.family and finding.reason
        assert len(finding.line) <= 300


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _check(classify(data))


@settings(max_examples=150, deadline=2000)
@given(st.text(max_size=2000))
def test_random_text(text: str) -> None:
    _check(classify(text))


@pytest.mark.skipif(not SAMPLES and not in_ci(), reason="corpus not available")
@settings(max_examples=120, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES or [Path("/dev/null")]),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 400), st.binary(max_size=64)),
             max_size=6),
)
def test_mutated_corpus_mail(path: Path, edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(path.read_bytes())
    for position, length, replacement in edits:
        at = position % (len(data) + 1)
        data[at : at + length] = replacement
    _check(classify(bytes(data)))


@pytest.mark.parametrize(
    "data",
    [
        b"\x00" * 10_000_000,
        b"From: a@b\nSubject: x\nContent-Type: multipart/mixed; boundary=Z\n\n"
        + b"--Z\n" * 2_000_000,
        ("550 5.1.1 User unknown " * 500_000).encode(),
        b"Content-Type: multipart/report; boundary=\"\n\n--\n" + b"A" * 10_000_000,
        "Final-Recipient: rfc822; a@example.com\n" * 300_000,
    ],
    ids=["nul-10MB", "boundaries", "repeated-reply", "broken-mime-10MB", "many-dsn-fields"],
)
def test_huge_and_broken_inputs_are_bounded(data: str | bytes) -> None:
    start = time.perf_counter()
    findings = classify(data)
    assert time.perf_counter() - start < 5
    _check(findings)
    assert len(findings) <= 50
