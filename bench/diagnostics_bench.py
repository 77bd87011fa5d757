"""Score the mail diagnostics classifier on the labelled corpora.

Run from the repository root::

    .venv/bin/python bench/diagnostics_bench.py [--corpus DIR] [--misses] [--split A|B --seed N]

Prints reason accuracy per reason on the bounce corpus, family accuracy per
family on the error corpus, the overall figures, and messages per second.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailadmin.diagnostics import Finding, classify  # noqa: E402

DEFAULT_CORPUS = ROOT / ".." / "shared" / "corpus"


@dataclass(frozen=True)
class Outcome:
    expected: str
    got: str
    name: str
    line: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


def match_findings(
    findings: Sequence[Finding], labels: Sequence[dict[str, object]]
) -> list[Finding | None]:
    """Pair each label of one file with a finding: by recipient, else by position."""
    paired: list[Finding | None] = []
    for index, label in enumerate(labels):
        wanted = str(label.get("recipient") or "").lower()
        chosen = next((f for f in findings if wanted and f.recipient == wanted), None)
        if chosen is None and findings:
            chosen = findings[min(index, len(findings) - 1)]
        paired.append(chosen)
    return paired


def split_files(names: Sequence[str], half: str | None, seed: int) -> set[str]:
    """The files of half A or B of a seeded random split (all files when no half is given).

    Tune by looking only at half A; half B stays held out to check that a
    change generalises.
    """
    ordered = sorted(names)
    if half is None:
        return set(ordered)
    random.Random(seed).shuffle(ordered)
    middle = len(ordered) // 2
    return set(ordered[:middle] if half.upper() == "A" else ordered[middle:])


def score_bounces(
    corpus: Path, half: str | None = None, seed: int = 0
) -> tuple[list[Outcome], int, float]:
    labels: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in (corpus / "bounces" / "labels.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            labels[item["file"]].append(item)
    chosen = split_files(list(labels), half, seed)
    labels = defaultdict(list, {k: v for k, v in labels.items() if k in chosen})
    outcomes = []
    elapsed = 0.0
    for name, items in labels.items():
        data = (corpus / "bounces" / name).read_bytes()
        start = time.perf_counter()
        findings = classify(data)
        elapsed += time.perf_counter() - start
        for label, finding in zip(items, match_findings(findings, items), strict=True):
            got = finding.reason if finding else "undefined"
            line = finding.line if finding else ""
            outcomes.append(Outcome(str(label["reason"]), got, name, line))
    return outcomes, len(labels), elapsed


def score_errors(corpus: Path) -> tuple[list[Outcome], int, float]:
    outcomes = []
    elapsed = 0.0
    lines = (corpus / "errors" / "errors.jsonl").read_text("utf-8").splitlines()
    for number, line in enumerate(filter(str.strip, lines), 1):
        item = json.loads(line)
        start = time.perf_counter()
        findings = classify(item["text"])
        elapsed += time.perf_counter() - start
        got = findings[0].family if findings else "other"
        first = findings[0].line if findings else ""
        outcomes.append(Outcome(item["family"], got, f"errors.jsonl:{number}", first))
    return outcomes, len(outcomes), elapsed


def report(title: str, outcomes: Sequence[Outcome], show_misses: bool) -> float:
    totals: Counter[str] = Counter(o.expected for o in outcomes)
    right: Counter[str] = Counter(o.expected for o in outcomes if o.ok)
    print(f"\n{title}")
    for key, total in totals.most_common():
        print(f"  {key:<22} {right[key]:>4}/{total:<4} {right[key] / total:6.1%}")
    overall = sum(right.values()) / max(len(outcomes), 1)
    print(f"  {'overall':<22} {sum(right.values()):>4}/{len(outcomes):<4} {overall:6.1%}")
    if show_misses:
        for o in outcomes:
            if not o.ok:
                print(f"    MISS {o.name}: expected {o.expected}, got {o.got} | {o.line[:140]}")
    return overall


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    parser.add_argument("--split", choices=["A", "B"], type=str.upper,
                        help="score only one half of a seeded random split of the bounce files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --split (default 0)")
    args = parser.parse_args(argv)
    classify("warm up: load and compile the catalogue outside the timing")
    bounces, n_bounce_msgs, t_bounce = score_bounces(args.corpus, args.split, args.seed)
    errors, n_error_msgs, t_errors = score_errors(args.corpus)
    title = "Bounce corpus: reason accuracy per recipient"
    if args.split:
        title += f" (half {args.split} of split seed {args.seed}: {n_bounce_msgs} files)"
    reason_acc = report(title, bounces, args.misses)
    family_acc = report("Error corpus: family accuracy per text", errors, args.misses)
    messages = n_bounce_msgs + n_error_msgs
    seconds = t_bounce + t_errors
    print(f"\nOverall: bounce reason {reason_acc:.1%}, error family {family_acc:.1%}")
    rate = messages / max(seconds, 1e-9)
    print(f"Speed: {messages} messages in {seconds:.3f}s = {rate:.0f} msg/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
