"""The domain mover: copies a domain's mail to another node, then switches it over.

Unlike a service it owns its transactions (see `services.domain_move` for the rules and the
steps): the plan is read in one, the copy runs outside any (it can take hours, and must not
hold a lock on the domain), and the switch commits in one of its own, so that the nodes
re-render; the last pass runs once they have (`wait_for_nodes`), so that mail the old node
took meanwhile comes along. A copy that fails raises `MoveFailed` and switches nothing.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from ..db import transaction
from ..mailstack.doveadm import DoveadmFailed, DoveadmMover, Endpoint
from ..services.context import Actor
from ..services.domain_move import MoveFailed, MovePlan, plan_move, switch_node
from ..services.nodes import list_nodes

#: A pass copies nothing new within this many passes, or the switch goes ahead anyway (the
#: last pass after the switch copies the rest: the source stops getting mail then).
MAX_PASSES = 5

#: Told (mailbox, step) after each mailbox: step is "copied" or "final".
Progress = Callable[[str, str], None]
#: How long the last pass waits for the online nodes to apply the switch, by default.
WAIT_FOR_NODES = 300.0


class Mover(t.Protocol):
    """Copies one mailbox between nodes and says what a node's copy holds."""

    def pull(self, address: str, source: Endpoint, target: Endpoint, *,
             full: bool = True) -> None: ...

    def state(self, address: str, node: Endpoint) -> tuple[tuple[str, ...], ...]: ...


@dataclasses.dataclass(frozen=True)
class MoveReport:
    domain: str
    source: str
    target: str
    mailboxes: tuple[str, ...]
    #: The most passes one mailbox needed before a pass copied nothing new.
    passes: int
    #: Mailboxes whose last pass after the switch failed (the domain is switched; run the
    #: printed doveadm command again for them), with the error.
    final_errors: tuple[tuple[str, str], ...] = ()
    #: Online nodes that had not applied the switch when the last pass ran (mail they take
    #: for the domain afterwards still goes to the old node until they do).
    behind: tuple[str, ...] = ()


def wait_for_nodes(factory: sessionmaker[Session], actor_for: Callable[[Session], Actor],
                   seconds: float, *, poll: float = 0.5) -> tuple[str, ...]:
    """Wait up to `seconds` until every online node has applied the latest change; the
    names of those still behind. A node whose runner is offline is not waited for: it
    applies the switch only when its runner is back."""
    deadline = time.monotonic() + seconds
    while True:
        with transaction(factory) as session:
            statuses = list_nodes(session, actor_for(session))
        behind = tuple(n.name for n in statuses if n.online and not n.current)
        if not behind or time.monotonic() >= deadline:
            return behind
        time.sleep(poll)


def copy_until_settled(mover: Mover, address: str, source: Endpoint, target: Endpoint) -> int:
    """Pull `address` until a pass changes nothing on the target; the number of passes.
    The first pass is full (the target may hold an older copy), the others quick."""
    before = None
    for passes in range(1, MAX_PASSES + 1):
        mover.pull(address, source, target, full=passes == 1)
        after = mover.state(address, target)
        if after == before:
            return passes
        before = after
    return MAX_PASSES


def move_domain(
    factory: sessionmaker[Session],
    actor_for: Callable[[Session], Actor],
    domain: str,
    to: str,
    *,
    source: str | None = None,
    mover: Mover | None = None,
    progress: Progress | None = None,
    planned: Callable[[MovePlan], None] | None = None,
    wait_seconds: float = WAIT_FOR_NODES,
) -> MoveReport:
    """Move `domain` to node `to` (see the module doc). Raises a refusal from `plan_move`
    or `switch_node`, or MoveFailed when a mailbox could not be copied.

    After the switch, the last pass waits (up to `wait_seconds`) until the online nodes have
    applied it: until then they still hand the domain's mail to the old node."""
    with transaction(factory) as session:
        plan = plan_move(session, actor_for(session), domain, to, source=source)
    if planned is not None:
        planned(plan)
    mover = mover or DoveadmMover(plan.config_dir)
    src, dst = plan.source_endpoint, plan.target_endpoint
    most = 0
    for address in plan.mailboxes:
        try:
            most = max(most, copy_until_settled(mover, address, src, dst))
        except DoveadmFailed as exc:
            raise MoveFailed(f"{address} could not be copied to {plan.target}, so nothing "
                             f"was switched: {plan.domain} stays on {plan.source}. "
                             f"{exc.message}") from None
        if progress is not None:
            progress(address, "copied")
    with transaction(factory) as session:
        switch_node(session, actor_for(session), plan, passes=most)
    behind = wait_for_nodes(factory, actor_for, wait_seconds)
    errors = []
    for address in plan.mailboxes:
        try:
            mover.pull(address, src, dst, full=True)
        except DoveadmFailed as exc:
            errors.append((address, exc.message))
        if progress is not None:
            progress(address, "final")
    return MoveReport(plan.domain, plan.source, plan.target, plan.mailboxes, most,
                      tuple(errors), behind)
