"""Which of one process's batches may be in flight at once (`GroupCommit`'s `overlaps`
and `beside`), and why that is as safe as the same batches sent by two processes.

Three kinds of unit may overlap; every other unit (a schedule tick, an enqueue with
parents, the reaper's reclaim of every tenant, a mix of reads) runs in a batch with
nothing beside it, as it always did:

- *enqueue*: creates jobs, with idempotency keys at most, reading nothing else;
- *claim*: leases ready jobs (and reclaims its tenant's expired leases), nothing else;
- *settle*: loads jobs it names (and their dependents) and writes them: acks, failures,
  heartbeats, releases, cancels, requeues.

Two enqueue batches may run together, two claims, two settles, and a claim beside a
settle. An enqueue runs beside no claim or settle: a job is never claimed by this
process while the batch that creates it is in flight. The group commit keeps the order
of calls made together (one batch, in order, unless they are many) and never starts a
unit beside a batch taken while it waited: two batches in flight together always hold
calls that were in flight together, which any order may serve.

Why the database alone keeps every promise for such pairs: each batch runs on its own
pooled connection, exactly as a batch of another process would. A claim locks what it
claims (`FOR UPDATE SKIP LOCKED`, never waiting for a lock) until its flush commits, so
two claims, here or anywhere, never hold one job (no double lease). A settle reads its
jobs unlocked (or takes them from `_leased`, see below) and writes them in one
statement guarded by each job's version and dependents count: if a claim reclaimed the
job's expired lease first, the guard trips; if the claim holds the row, the settle's
statement waits for its commit and then trips. Either way the settle's batch is rolled
back and its units re-run alone on fresh reads, where the old lease's token is refused
(fencing; cancel wins the same way). A lock wait that closes a cycle (a settle and a
claim's flush both reaching a shared dependent) is a deadlock the server breaks, and a
lost race like any other. A unit is never cut across batches (all or nothing), and each
batch's callers resume when their own batch has committed.

What the batches of one process share in memory, and why their order does not matter:

- `_leased` (the leases a settle may take unread): stale entries are refused by the
  flush's guard, and `remember_leases` never replaces an entry with an older version of
  the job, so batches that land out of order cannot make it older;
- the highest committed seq (`max`), the counters, the NOTIFY pacer (a batch that may not
  send leaves the announcement to the end of the interval) and the local wake-ups: each
  is an update that commutes;
- nothing else: each batch has its own working set, time and enqueue positions, and the
  sequencer numbers two sessions' events as it numbers two processes'.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from dogqueue.backend.kit.batching import Lane
from dogqueue.backend.kit.batchset import BatchWorkingSet
from dogqueue.backend.postgres.reads import Known
from dogqueue.core.projection import JobKey
from dogqueue.core.status import JobStatus
from dogqueue.engine import Unit

ENQUEUE, CLAIM, SETTLE = "enqueue", "claim", "settle"
#: The kinds that may be in flight together (each with itself, and a claim with a settle).
_PAIRS = {(ENQUEUE, ENQUEUE), (CLAIM, CLAIM), (SETTLE, SETTLE), (CLAIM, SETTLE)}
_TOGETHER = frozenset(_PAIRS | {(b, a) for a, b in _PAIRS})
#: Leased jobs remembered for their settle at most (all are forgotten past it).
MAX_REMEMBERED_LEASES = 10_000


def lane(unit: Unit[Any]) -> Lane | None:
    """The unit's kind and how many jobs it creates or writes (for the group commit's
    shares), or None if it may run beside nothing."""
    reads = unit.reads
    if reads.key_prefixes or (reads.dependents and not reads.jobs):
        return None
    if reads.ready:
        if reads.jobs or reads.keys or reads.new_jobs or len(reads.expired) > 1:
            return None
        if reads.expired and reads.expired[0] is None:
            return None
        # Counted as no jobs: how many it finds is not known, and a window of idle
        # consumers' claims (all woken by one new job) must not be cut in shares.
        return CLAIM, 0
    if reads.expired:
        return None
    if reads.jobs:
        if reads.keys or reads.new_jobs or not set(reads.dependents) <= set(reads.jobs):
            return None
        return SETTLE, len(reads.jobs)
    if reads.new_jobs:
        return ENQUEUE, reads.new_jobs
    return None


def beside(kind: str, other: str) -> bool:
    """Whether a batch of `kind` may start while one of `other` is in flight."""
    return (kind, other) in _TOGETHER


def remember_leases(leased: MutableMapping[JobKey, Known], ws: BatchWorkingSet) -> None:
    """Keep the jobs a committed batch leased as it wrote them (their settle skips the
    read), and forget those it moved out of a lease; an entry is never replaced by an
    older version of its job (another batch may have landed first with a newer one)."""
    if len(leased) >= MAX_REMEMBERED_LEASES:
        leased.clear()
    for key, before in ws.before.items():
        job = ws.jobs[key]
        held = leased.get(key)
        if held is not None and held.job.version > job.version:
            continue
        if job.status is JobStatus.LEASED and before is not None:
            dependents = ws.stored_dependents.get(key, 0) + ws.adopted.get(key, 0)
            leased[key] = Known(job, dependents)
        else:
            leased.pop(key, None)
