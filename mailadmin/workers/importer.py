"""The importer: applies what a cPanel backup or a CSV file brings, one transaction per domain.

Unlike a service it owns its transactions: each domain is applied by
`services.imports.import_domain` (which holds every rule) in a transaction of its own, committed
when the whole domain went through and rolled back on the first refusal, so a domain is either
imported completely or not at all, and one bad domain does not hold back the others. A domain
with a line that cannot be read is not started. A dry run rolls every domain back and reports
what would have changed.

Plaintext passwords are hashed in a process pool (`imports.pool`), which is where an import of
plaintext passwords spends its time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from ..errors import MailadminError
from ..imports.pool import PasswordPool
from ..imports.records import DomainImport
from ..services.context import Actor
from ..services.imports import DomainResult, import_domain

log = logging.getLogger(__name__)

#: Stands in for a hash in a dry run, which is rolled back: hashing would only cost time.
_DRY_RUN_HASH = "{SHA512-CRYPT}dry-run"

#: Told how many more records are done.
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    dry_run: bool
    results: list[DomainResult] = field(default_factory=list)

    @property
    def failed(self) -> list[DomainResult]:
        return [r for r in self.results if r.error is not None]

    @property
    def imported(self) -> list[DomainResult]:
        return [r for r in self.results if r.error is None]


def total_records(plans: Sequence[DomainImport]) -> int:
    return sum(plan.size for plan in plans)


def run_import(
    factory: sessionmaker[Session],
    actor_for: Callable[[Session], Actor],
    plans: Sequence[DomainImport],
    *,
    customer: str | None = None,
    create_domains: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    processes: int | None = None,
) -> ImportReport:
    """Import every domain of `plans` (see the module docstring); never raises a refusal,
    which is reported on its domain instead.

    `actor_for` gives the actor inside each transaction (the CLI's ``--as`` user is looked up
    there). `create_domains` and `customer` are passed to `import_domain`.
    """
    report = ImportReport(dry_run=dry_run)
    for plan in plans:
        told = 0

        def tell(count: int) -> None:
            nonlocal told
            told += count
            if progress is not None:
                progress(count)

        pool = PasswordPool(processes, progress=tell)

        def dry_hashes(passwords: Sequence[str], scheme: str) -> list[str]:
            tell(len(passwords))
            return [_DRY_RUN_HASH for _ in passwords]

        if plan.malformed:
            report.results.append(DomainResult(
                domain=plan.name, skipped=list(plan.skipped),
                error="\n".join(str(m) for m in plan.malformed)))
        else:
            report.results.append(_one_domain(
                factory, actor_for, plan, customer=customer, create_domain=create_domains,
                dry_run=dry_run, hash_passwords=dry_hashes if dry_run else pool.hash_many,
                verify_passwords=pool.verify_many))
        if progress is not None and plan.size > told:
            progress(plan.size - told)
    return report


def _one_domain(
    factory: sessionmaker[Session],
    actor_for: Callable[[Session], Actor],
    plan: DomainImport,
    *,
    customer: str | None,
    create_domain: bool,
    dry_run: bool,
    hash_passwords: Callable[[Sequence[str], str], list[str]],
    verify_passwords: Callable[[Sequence[tuple[str, str]]], list[bool]],
) -> DomainResult:
    with factory() as session:
        session.begin()
        try:
            result = import_domain(
                session, actor_for(session), plan, customer=customer,
                create_domain=create_domain, hash_passwords=hash_passwords,
                verify_passwords=verify_passwords)
        except MailadminError as exc:
            session.rollback()
            return DomainResult(domain=plan.name, skipped=list(plan.skipped), error=exc.message)
        except BaseException:
            session.rollback()
            raise
        if dry_run:
            session.rollback()
        else:
            session.commit()
            log.info("imported %s: %d changes", result.domain, len(result.changes))
        return result
