"""The verifier against forged logs: each kind of tampering is caught, at the right
position, and an honest log raises no alarm."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from dogqueue import FakeClock
from dogqueue.audit.checkpoint import Checkpoint, checkpoint_of
from dogqueue.audit.verify import PAGE, Report
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.core.codec import encode_event, encode_job
from dogqueue.core.events import Canceled
from dogqueue.log.chain import GENESIS, chain_hash
from tests.audit.audit_workload import write_bulk
from tests.audit.file_edits import edit
from tests.audit.sync_log import SyncLog

Story = tuple[Path, dict[str, str]]


def verify(path: Path, checkpoint: Checkpoint | None = None) -> Report:
    with SyncLog(path) as log:
        return log.verify(checkpoint)


def checkpoint(path: Path) -> Checkpoint:
    report = verify(path)
    assert report.ok, report.problems
    return checkpoint_of(max(seq for seq, _ in report.heads.values()), report.heads)


def row(path: Path, seq: int) -> tuple[str, str, int, str, bytes, bytes]:
    conn = sqlite3.connect(path)
    found = conn.execute(
        "SELECT tenant_id, job_id, version, type, data, hash FROM events WHERE seq = ?", (seq,)
    ).fetchone()
    conn.close()
    return found  # type: ignore[no-any-return]


def last_seq(path: Path) -> int:
    conn = sqlite3.connect(path)
    (seq,) = conn.execute("SELECT max(seq) FROM events").fetchone()
    conn.close()
    return int(seq)


def test_honest_story_log_verifies(story_log: Story) -> None:
    report = verify(story_log[0])
    assert report.ok, report.problems
    assert report.events == last_seq(story_log[0])
    assert set(report.heads) == {"acme", "globex"}


def test_flipped_byte_in_an_event_is_found_at_its_position(story_log: Story) -> None:
    path, _ = story_log
    data = bytearray(row(path, 7)[4])
    data[len(data) // 2] ^= 0x01
    edit(path, ("UPDATE events SET data = ? WHERE seq = 7", (bytes(data),)))
    report = verify(path)
    assert not report.ok
    assert report.first_bad_seq == 7


def test_flipped_byte_in_a_stored_hash_is_found(story_log: Story) -> None:
    path, _ = story_log
    digest = bytearray(row(path, 4)[5])
    digest[0] ^= 0x80
    edit(path, ("UPDATE events SET hash = ? WHERE seq = 4", (bytes(digest),)))
    assert verify(path).first_bad_seq == 4


def test_deleted_event_is_found_where_it_was(story_log: Story) -> None:
    path, _ = story_log
    edit(path, ("DELETE FROM events WHERE seq = 9", ()))
    report = verify(path)
    assert report.first_bad_seq == 9
    assert any("missing" in p.what for p in report.problems)


def test_two_swapped_events_are_found(story_log: Story) -> None:
    path, _ = story_log
    edit(
        path,
        ("UPDATE events SET seq = -1 WHERE seq = 10", ()),
        ("UPDATE events SET seq = 10 WHERE seq = 11", ()),
        ("UPDATE events SET seq = 11 WHERE seq = -1", ()),
    )
    assert verify(path).first_bad_seq == 10


def test_forged_event_appended_without_the_right_hash_is_found(story_log: Story) -> None:
    path, ids = story_log
    end = last_seq(path)
    with SyncLog(path) as log:
        waiting = log.history("acme", ids["waiting"])[-1]
    forged = Canceled(tenant_id="acme", job_id=ids["waiting"], version=2, at=waiting.at)
    data = encode_event(forged)
    # A plausible hash, but not linked to acme's chain head.
    edit(
        path,
        (
            "INSERT INTO events (seq, tenant_id, job_id, version, type, data, hash)"
            " VALUES (?, 'acme', ?, 2, 'canceled', ?, ?)",
            (end + 1, ids["waiting"], data, chain_hash(GENESIS, end + 1, data)),
        ),
    )
    report = verify(path)
    assert report.first_bad_seq == end + 1


def test_truncated_tail_is_found_by_the_stored_heads(story_log: Story) -> None:
    """A log closed cleanly has its heads folded at its end: events cut from its end
    leave a stored head that the log no longer reaches. (Events after the folded
    position, those a writer appended since its last fold, have no such witness: their
    heads are read from them; an outside checkpoint or the audit key covers them.)"""
    path, _ = story_log
    end = last_seq(path)
    edit(path, ("DELETE FROM events WHERE seq > ?", (end - 2,)))
    report = verify(path)
    assert not report.ok
    assert any("chain head" in p.what for p in report.problems)


def test_truncated_tail_is_caught_with_a_checkpoint(story_log: Story) -> None:
    path, _ = story_log
    saved = checkpoint(path)
    end = last_seq(path)
    # A careful attacker also rolls the stored head and projection back, so the log
    # alone looks honest; only the checkpoint remembers.
    with SyncLog(path) as log:
        jobs_before = {(j.tenant_id, j.job_id): j for j in log.jobs()}
    edit(path, ("DELETE FROM events WHERE seq > ?", (end - 2,)))
    _roll_back_derived_state(path)
    assert verify(path).ok, "without a checkpoint a clean truncation cannot be seen"
    report = verify(path, saved)
    assert not report.ok
    assert report.first_bad_seq == end - 1
    assert jobs_before  # the story had jobs to lose


def test_rewritten_log_is_caught_with_a_checkpoint(story_log: Story, tmp_path: Path) -> None:
    path, _ = story_log
    saved = checkpoint(path)
    # Rewrite history: every event re-encoded with the job "email" renamed, and the
    # whole chain, heads and projection recomputed so that the log is self-consistent.
    conn = sqlite3.connect(path)
    with conn:
        rows = conn.execute("SELECT seq, tenant_id, data FROM events ORDER BY seq").fetchall()
        heads: dict[str, bytes] = {}
        for seq, tenant, data in rows:
            new = bytes(data).replace(b"a@example.com", b"b@example.com")
            digest = chain_hash(heads.get(tenant, GENESIS), seq, new)
            heads[tenant] = digest
            conn.execute("UPDATE events SET data = ?, hash = ? WHERE seq = ?", (new, digest, seq))
        for tenant, digest in heads.items():
            conn.execute("UPDATE chain_heads SET hash = ? WHERE tenant_id = ?", (digest, tenant))
    conn.close()
    _roll_back_derived_state(path)
    assert verify(path).ok, "the rewrite is self-consistent"
    report = verify(path, saved)
    assert not report.ok
    assert report.first_bad_seq is not None


def test_projection_edited_behind_the_log_is_found(story_log: Story) -> None:
    path, ids = story_log
    with SyncLog(path) as log:
        job = next(j for j in log.jobs() if j.job_id == ids["waiting"])
    forged = msgspec.structs.replace(job, attempts=3)
    edit(
        path,
        ("UPDATE jobs SET state = ? WHERE job_id = ?", (encode_job(forged), ids["waiting"])),
    )
    report = verify(path)
    assert [p.what for p in report.problems] == [
        f"projection of job {ids['waiting']!r} of 'acme' differs from its events"
    ]


def test_event_moved_to_another_tenant_is_found(story_log: Story) -> None:
    path, _ = story_log
    edit(path, ("UPDATE events SET tenant_id = 'globex' WHERE seq = 6", ()))
    assert verify(path).first_bad_seq == 6


async def test_a_clean_log_over_many_pages_raises_no_alarm(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "big.db"
    async with SqliteBackend(path, clock=clock) as backend:
        await write_bulk(backend, clock, jobs=12_000)
    report = verify(path)
    assert report.events > 3 * PAGE  # verify reads the log a page at a time
    assert report.ok, report.problems


def _roll_back_derived_state(path: Path) -> None:
    """Make the stored heads and projection agree with whatever the events now say."""
    report = verify(path)
    edit(
        path,
        ("DELETE FROM chain_heads", ()),
        *[
            ("INSERT INTO chain_heads (tenant_id, seq, hash) VALUES (?, ?, ?)", (t, s, h))
            for t, (s, h) in report.heads.items()
        ],
    )
    import asyncio

    async def rebuild() -> None:
        async with SqliteBackend(path) as backend:
            await backend.rebuild_projections()

    asyncio.run(rebuild())


async def test_verifying_a_log_while_it_is_written_raises_no_alarm(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Verification reads one snapshot, so appends racing it are not mistaken for
    tampering."""
    import asyncio

    path = tmp_path / "busy.db"
    async with SqliteBackend(path, clock=clock) as backend:
        await write_bulk(backend, clock, jobs=500)
        writing = asyncio.create_task(write_bulk(backend, clock, jobs=3000))
        reports = []
        while not writing.done():
            reports.append(await asyncio.to_thread(verify, path))
        await writing
    assert reports
    assert all(report.ok for report in reports), [r.problems for r in reports if not r.ok]


def test_an_edited_tenant_position_is_found(story_log: Story) -> None:
    """Tenant positions are not in the chain, so verify checks them on their own."""
    path, _ = story_log
    edit(path, ("UPDATE events SET tpos = tpos + 1 WHERE seq = 7", ()))
    report = verify(path)
    assert report.first_bad_seq == 7
    assert "tenant position" in report.problems[0].what
