"""Imports started from the panel, as `Job` rows: their progress and outcome in the database.

The panel may run as several processes (`mailadmin serve --workers N`), so the request that
starts an import, the thread that runs it and the requests that poll its status page can each
be in another process; the database is what they share. A job is visible only to the account
that started it, acting as the same customer; anyone else is told it does not exist.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing as t

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound
from ..imports.records import Skipped
from ..models import Job, utcnow
from .context import Actor
from .imports import Change, DomainResult

KIND = "csv-import"
#: A job still "running" after this long was cut short (its process ended): it no longer
#: blocks a new import.
STALE_AFTER = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class ImportOutcome:
    """What the status page shows: `results` once the job is done, `failure` if it broke."""

    dry_run: bool
    results: tuple[DomainResult, ...]

    @property
    def failed(self) -> list[DomainResult]:
        return [r for r in self.results if r.error is not None]

    @property
    def imported(self) -> list[DomainResult]:
        return [r for r in self.results if r.error is None]


@dataclasses.dataclass(frozen=True)
class ImportJobView:
    id: int
    total: int
    done: int
    dry_run: bool
    finished: bool
    failure: str | None
    report: ImportOutcome | None

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))


def _details(job: Job) -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], json.loads(job.message or "{}"))


def _owned(job: Job | None, actor: Actor) -> Job:
    if (job is None or job.kind != KIND or job.owner_id != actor.user_id
            or _details(job).get("customer_id") != actor.customer_id):
        raise NotFound("No such import.")
    return job


def start_import_job(session: Session, actor: Actor, total: int, dry_run: bool) -> Job:
    """Record a new import of the actor's; refused while another of its imports runs."""
    since = utcnow() - STALE_AFTER
    running = session.scalars(
        select(Job).where(Job.kind == KIND, Job.owner_id == actor.user_id,
                          Job.state.in_(("queued", "running")), Job.created_at >= since)
    ).all()
    if any(_details(job).get("customer_id") == actor.customer_id for job in running):
        raise Conflict("An import of yours is still running; wait for it to finish.")
    job = Job(kind=KIND, state="running", progress_done=0, progress_total=total,
              owner_id=actor.user_id,
              message=json.dumps({"customer_id": actor.customer_id, "dry_run": dry_run}))
    session.add(job)
    session.flush()
    return job


def advance_import_job(session: Session, job_id: int, count: int) -> None:
    """`count` more records are done (called by the import's own thread)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.progress_done += count
        session.flush()


def finish_import_job(session: Session, job_id: int, *, results: t.Sequence[DomainResult] = (),
                      failure: str | None = None) -> None:
    """Store the outcome: every domain's changes, skips and refusal, or why the job broke."""
    job = session.get(Job, job_id)
    if job is None:
        return
    details = _details(job)
    details["results"] = [dataclasses.asdict(result) for result in results]
    details["failure"] = failure
    job.message = json.dumps(details)
    job.state = "failed" if failure else "done"
    job.finished_at = utcnow()
    session.flush()


def get_import_job(session: Session, actor: Actor, job_id: int) -> ImportJobView:
    job = _owned(session.get(Job, job_id), actor)
    details = _details(job)
    finished = job.state in ("done", "failed")
    report = None
    if job.state == "done":
        report = ImportOutcome(bool(details.get("dry_run")), tuple(
            DomainResult(
                domain=item["domain"],
                changes=[Change(**change) for change in item["changes"]],
                skipped=[Skipped(what=s["what"], reason=s["reason"]) for s in item["skipped"]],
                error=item["error"],
            )
            for item in details.get("results", [])
        ))
    return ImportJobView(
        id=job.id, total=job.progress_total or 0, done=job.progress_done,
        dry_run=bool(details.get("dry_run")), finished=finished,
        failure=details.get("failure"), report=report,
    )
