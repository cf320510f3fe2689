"""One tenant's batch on the kit's batch working set, and the flush script's arguments
for what its units wrote."""

from __future__ import annotations

from typing import Any

import msgspec

from dogqueue.backend.kit.batchset import BatchReads, BatchWorkingSet
from dogqueue.backend.kit.rows import to_micros
from dogqueue.core.codec import encode_job
from dogqueue.core.cron import KEY_NAMESPACE
from dogqueue.core.job import JobInfo
from dogqueue.core.status import JobStatus
from dogqueue.engine import Reads

#: The index entry of a job in no index.
NO_INDEX = ("-", "", "", "", "")


def unit_tenant(reads: Reads) -> str | None:
    """The one tenant a unit reads and writes (None: it declared none)."""
    if reads.tenant is not None:
        return reads.tenant
    for pairs in (reads.jobs, reads.keys, reads.key_prefixes):
        if pairs:
            return pairs[0][0]
    if reads.ready:
        return reads.ready[0][0]
    for tenant_or_all in reads.expired:
        return tenant_or_all
    return None


def queue_wants(reads: BatchReads) -> dict[str, int]:
    """How many ready jobs to read per queue: what the units may lease, plus the jobs
    they load (which may leave the ready set, a cancel, before a dequeue)."""
    wants: dict[str, int] = {}
    for (_, queues), n in reads.ready.items():
        for queue in queues:
            wants[queue] = wants.get(queue, 0) + n + len(reads.jobs)
    return wants


def read_keys(reads: BatchReads) -> set[str]:
    """The names of the keys the read script touches that are known before it runs
    (the ready sets of each priority and the dependents' lists it finds are not: what
    it reads there stale, the flush's guards refuse)."""
    names = {"fifo", "jobs", "k", "cron", "l"}
    names |= {"p:" + queue for queue in queue_wants(reads)}
    names |= {"c:" + job for _, job in (*reads.jobs, *reads.dependents)}
    return names


class TenantBatch(BatchWorkingSet):
    """The kit's batch working set for one tenant's units (every key on its shard)."""

    def __init__(self, tenant_id: str, fifo: list[int]) -> None:
        super().__init__(fifo)
        self.tenant_id = tenant_id

    def flush_args(self, tag: str, notify: tuple[str, str] | None = None) -> list[Any]:
        """The flush script's ARGV (see flush.lua): the tag, one msgpack array, then the
        event data and job states it points at. `notify`: a channel and a message the
        script publishes once it wrote."""
        guards: list[Any] = []
        rows: list[Any] = []
        keys: list[Any] = []
        blobs: list[bytes] = []
        for key, before in self.before.items():
            job = self.jobs[key]
            if before is None:
                guards += (job.job_id, 0, -1)
                name = job.message.idempotency_key
                if name is not None:
                    keys += (name, job.job_id, int(name.startswith(KEY_NAMESPACE)))
            else:
                guards += (job.job_id, before.version, self.stored_dependents.get(key, -1))
            blobs.append(encode_job(job))
            rows += (job.job_id, job.version, len(blobs) + 2)
            rows += index_entry(before) + index_entry(job)
        for key in self.adopted:  # parents that only gained dependents
            if key not in self.before:
                guards += (key[1], self.jobs[key].version, self.stored_dependents.get(key, -1))
        events: list[Any] = []
        for _, _, job_id, version, kind, data in self.journal:
            blobs.append(data)
            events += (job_id, version, kind, len(blobs) + 2)
        edges = [item for _, parent, _, child in self.new_edges for item in (parent, child)]
        packed = msgspec.msgpack.encode(
            [
                len(guards) // 3,
                *guards,
                len(keys) // 3,
                *keys,
                len(events) // 4,
                *events,
                len(rows) // 13,
                *rows,
                len(edges) // 2,
                *edges,
                *(notify or ("",)),
            ]
        )
        return [tag, packed, *blobs]

    def flush_keys(self) -> set[str]:
        """The names (under the tenant's tag) of every key the flush script touches."""
        names = {"v", "k", "cron", "n", "h", "e", "jobs", "l"}
        for key, before in self.before.items():
            names.add("c:" + key[1])
            for kind, queue, priority, _, _ in (index_entry(before), index_entry(self.jobs[key])):
                if kind == "r":
                    names |= {f"r:{queue}:{priority}", f"p:{queue}"}
        names |= {"c:" + key[1] for key in self.adopted}
        names |= {"c:" + parent for _, parent, _, _ in self.new_edges}
        return names


def declared_keys(tag: str, names: set[str]) -> list[str]:
    """The tenant keys `names` (under `tag`), sorted, for a script's KEYS: a cluster
    runs a script only on the node holding every key it declares (while its slot
    migrates, TRYAGAIN until the keys are together), never on a node missing some."""
    return [tag + ":" + name for name in sorted(names)]


def ready_member(job: JobInfo) -> str:
    """The job's member in its ready set: its FIFO key, zero-padded, then its id (equal
    run_at scores sort by member, so by FIFO key)."""
    return f"{job.enqueue_seq:016d}:{job.job_id}"


def index_entry(job: JobInfo | None) -> tuple[Any, ...]:
    """(kind, queue, priority, score, member) of the job's index entry (see flush.lua)."""
    if job is None:
        return NO_INDEX
    if job.status is JobStatus.ENQUEUED:
        message = job.message
        return ("r", message.queue, int(message.priority), to_micros(job.run_at), ready_member(job))
    if job.status is JobStatus.LEASED and job.lease_expires_at is not None:
        return ("l", "", "", to_micros(job.lease_expires_at), job.job_id)
    return NO_INDEX
