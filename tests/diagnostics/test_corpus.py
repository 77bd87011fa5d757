"""Accuracy on the labelled development corpora (a held-out set judges the same way)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from mailadmin.diagnostics import classify

from .conftest import CORPUS

MIN_ACCURACY = 0.90


def test_bounce_reason_accuracy(corpus: Path) -> None:
    labels: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in (corpus / "bounces" / "labels.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            labels[item["file"]].append(item)
    right = total = 0
    for name, items in labels.items():
        findings = classify((corpus / "bounces" / name).read_bytes())
        for index, label in enumerate(items):
            wanted = (label.get("recipient") or "").lower()
            match = next((f for f in findings if wanted and f.recipient == wanted), None)
            if match is None and findings:
                match = findings[min(index, len(findings) - 1)]
            total += 1
            # No finding is the "not recognised" answer, as the CLI prints it.
            right += (match.reason if match else "undefined") == label["reason"]
    assert right / total >= MIN_ACCURACY, f"{right}/{total}"


def test_error_family_accuracy(corpus: Path) -> None:
    lines = (corpus / "errors" / "errors.jsonl").read_text("utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    right = 0
    for item in items:
        findings = classify(item["text"])
        right += (findings[0].family if findings else "other") == item["family"]
    assert right / len(items) >= MIN_ACCURACY, f"{right}/{len(items)}"


def test_corpus_location_is_relative_to_the_repository() -> None:
    if os.environ.get("MAILADMIN_CORPUS"):
        pytest.skip("corpus location overridden by MAILADMIN_CORPUS")
    assert CORPUS.parts[-3:] == ("..", "shared", "corpus")
