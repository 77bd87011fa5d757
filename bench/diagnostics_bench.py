"""Score the mail diagnostics classifier on the labelled corpora.

Run from the repository root::

    .venv/bin/python bench/diagnostics_bench.py [--corpus DIR] [--misses] [--split A|B --seed N]
        [--no-loso] [--no-cli]

Prints reason accuracy per reason on the bounce corpus, family accuracy per
family on the error corpus, and the overall figures; then the generalisation
figures:

* leave-one-source-out (LOSO) on the bounces: for each source family (the
  file-name prefix, ``lhost-exim``, ``rhost-google`` ...) its files are
  classified with every phrase and table entry switched off that matches only
  that family's files;
* leave-one-case-out (LOCO) on the error texts: each text is classified with
  every phrase and entry switched off that matches only that text;

"Phrase and entry" means every catalogue id: each phrase of a rule, each
[status] and [replycode] entry, each host-table entry (SMTP codes and a
provider's own codes). Never switched off are the published standards
classify.py holds in code: the IANA registry of enhanced status codes, the
RFC 5321/4954 reply codes with one meaning, and the RFC 3463 class fallback.

and last the speed of ``mailadmin diagnose`` on 300 bounce files in one call,
process start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailadmin.diagnostics import Finding, classify  # noqa: E402
from mailadmin.diagnostics.classify import matching_ids  # noqa: E402

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


def bounce_labels(corpus: Path) -> dict[str, list[dict[str, object]]]:
    labels: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in (corpus / "bounces" / "labels.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            labels[item["file"]].append(item)
    return labels


def source_family(name: str) -> str:
    """``eml/lhost-exim-12.eml`` -> ``lhost-exim``."""
    return re.sub(r"-\d+$", "", Path(name).stem)


def _outcomes(name: str, items: Sequence[dict[str, object]],
              findings: Sequence[Finding]) -> list[Outcome]:
    out = []
    for label, finding in zip(items, match_findings(findings, items), strict=True):
        got = finding.reason if finding else "undefined"
        out.append(Outcome(str(label["reason"]), got, name, finding.line if finding else ""))
    return out


def only_matching(ids_by_item: dict[str, set[str]],
                  group_of: dict[str, str]) -> dict[str, set[str]]:
    """Per group: the ids that match files of that group and of no other group."""
    groups_of_id: dict[str, set[str]] = defaultdict(set)
    for item, ids in ids_by_item.items():
        for rule_id in ids:
            groups_of_id[rule_id].add(group_of[item])
    out: dict[str, set[str]] = defaultdict(set)
    for rule_id, groups in groups_of_id.items():
        if len(groups) == 1:
            out[next(iter(groups))].add(rule_id)
    return out


def loso_bounces(corpus: Path) -> tuple[list[Outcome], dict[str, set[str]]]:
    """Leave-one-source-out: each family's files without the ids only that family matches."""
    labels = bounce_labels(corpus)
    data = {name: (corpus / "bounces" / name).read_bytes() for name in labels}
    ids = {name: matching_ids(raw) for name, raw in data.items()}
    groups = {name: source_family(name) for name in labels}
    unique = only_matching(ids, groups)
    outcomes = []
    for name, items in labels.items():
        switched_off = frozenset(unique.get(groups[name], set()))
        outcomes += _outcomes(name, items, classify(data[name], switched_off))
    return outcomes, unique


def loco_errors(corpus: Path) -> list[Outcome]:
    """Leave-one-case-out: each text without the ids that match only that text."""
    lines = (corpus / "errors" / "errors.jsonl").read_text("utf-8").splitlines()
    items = {f"errors.jsonl:{n}": json.loads(line)
             for n, line in enumerate(filter(str.strip, lines), 1)}
    ids = {name: matching_ids(item["text"]) for name, item in items.items()}
    unique = only_matching(ids, {name: name for name in items})
    outcomes = []
    for name, item in items.items():
        findings = classify(item["text"], frozenset(unique.get(name, set())))
        got = findings[0].family if findings else "other"
        outcomes.append(Outcome(item["family"], got, name, findings[0].line if findings else ""))
    return outcomes


def cli_speed(corpus: Path, count: int = 300) -> tuple[int, float, float] | None:
    """Run ``mailadmin diagnose`` once on ``count`` bounce files.

    Returns (files, wall-clock seconds, CPU seconds of the child process). The
    CPU time is printed too because on a shared machine the wall clock also
    counts the time other processes held the cores.
    """
    script = Path(sys.executable).with_name("mailadmin")
    if not script.exists():
        return None
    files = sorted((corpus / "bounces" / "eml").glob("*.eml"))
    if not files:
        return None
    chosen = [str(files[i % len(files)]) for i in range(count)]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([str(script), "diagnose", "--json", *chosen], env=env,
                              capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(f"mailadmin diagnose failed ({done.returncode}): {done.stderr.decode()[-500:]}")
        return None
    return count, elapsed, cpu


def score_bounces(
    corpus: Path, half: str | None = None, seed: int = 0
) -> tuple[list[Outcome], int, float]:
    labels = bounce_labels(corpus)
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
    parser.add_argument("--no-loso", action="store_true", help="skip the held-out figures")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI speed run")
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
    print(f"Speed (in process): {messages} messages in {seconds:.3f}s = {rate:.0f} msg/s")
    if not args.no_loso:
        loso, unique = loso_bounces(args.corpus)
        switched = sum(len(v) for v in unique.values())
        loso_acc = report(f"Bounce corpus, leave-one-source-out ({len(unique)} families had "
                          f"{switched} source-only ids switched off)", loso, args.misses)
        loco = loco_errors(args.corpus)
        loco_acc = report("Error corpus, leave-one-case-out", loco, args.misses)
        print(f"\nGeneralisation: bounce plain {reason_acc:.1%} vs leave-one-source-out "
              f"{loso_acc:.1%}; error plain {family_acc:.1%} vs leave-one-case-out {loco_acc:.1%}")
    if not args.no_cli:
        run = cli_speed(args.corpus)
        if run is not None:
            count, elapsed, cpu = run
            print(f"CLI: mailadmin diagnose on {count} bounce files in one call: "
                  f"{elapsed:.3f}s = {count / elapsed:.0f} msg/s (process start-up included); "
                  f"CPU {cpu:.3f}s = {count / max(cpu, 1e-9):.0f} msg/s; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
