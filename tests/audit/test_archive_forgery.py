"""Archival cannot hide a deletion or a forgery (issue 15, item 12). `dogqueue verify`
accepts a position moved out of the live log only where an archive holds its event; it
reads the archives in log order with the live log, so chains, anchors and checkpoint
heads are checked across both files; and a checkpoint pins the chain of archival records.
Every case edits real files as an attacker with write access to both would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from dogqueue import Canceled, Enqueued, FakeClock, fold
from dogqueue.backend.kit.rows import job_row
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.archive import archive_before
from dogqueue.backend.sqlite.queries import Q
from dogqueue.cli import main
from dogqueue.core.codec import decode_event, encode_event
from dogqueue.log.chain import GENESIS, chain_hash, seq_hash_digest
from tests.audit.audit_workload import GLOBEX
from tests.audit.file_edits import edit, rows
from tests.audit.sync_log import run_sync

Story = tuple[Path, dict[str, str]]
NOW = datetime(2030, 1, 2, tzinfo=UTC)


def dogqueue(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main([str(arg) for arg in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def checkpoint(capsys: pytest.CaptureFixture[str], path: Path, out: Path) -> Path:
    assert dogqueue(capsys, "checkpoint", "--db", path, "--out", out)[0] == 0
    return out


def disguise_deletion(path: Path, job_id: str) -> None:
    """Delete a job's whole history and make the gap look like an archival: ranges for
    its positions, and anchors for the hashes the remaining events link to."""
    records = rows(path, "SELECT seq, tenant_id, job_id, hash FROM events ORDER BY seq")
    deleted = {int(seq) for seq, _, job, _ in records if job == job_id}
    anchors = []
    for position, (seq, tenant, _, digest) in enumerate(records):
        if seq not in deleted:
            continue
        later = [r for r in records[position + 1 :] if r[1] == tenant]
        if not later or later[0][0] not in deleted:
            anchors.append((seq, tenant, digest))
    statements: list[tuple[str, tuple[object, ...]]] = [
        ("DELETE FROM events WHERE job_id = ?", (job_id,)),
        ("DELETE FROM jobs WHERE job_id = ?", (job_id,)),
    ]
    statements += [("INSERT INTO archived_ranges VALUES (?, ?)", (s, s)) for s in sorted(deleted)]
    statements += [("INSERT OR REPLACE INTO chain_anchors VALUES (?, ?, ?)", a) for a in anchors]
    edit(path, *statements)


def test_a_moved_position_needs_its_archive(
    story_log: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = story_log
    elsewhere = tmp_path / "cold"
    elsewhere.mkdir()
    target = elsewhere / "a.db"
    assert archive_before(path, target, NOW, NOW).jobs == 3
    code, text = dogqueue(capsys, "verify", "--db", path)
    assert code == 1, text
    assert "no archive given holds them" in text
    code, text = dogqueue(capsys, "verify", "--db", path, "--archive", target)
    assert code == 0, text
    # Next to the live file, the archive the log names is found without --archive.
    target.rename(tmp_path / "a.db")
    code, text = dogqueue(capsys, "verify", "--db", path)
    assert code == 0, text


@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_a_deletion_disguised_as_archival_is_caught(
    story_log: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str], with_checkpoint: bool
) -> None:
    path, ids = story_log
    target = tmp_path / "a.db"
    archive_before(path, target, NOW, NOW)  # an honest archival first
    saved = checkpoint(capsys, path, tmp_path / "cp.json")
    disguise_deletion(path, ids["waiting"])  # an unfinished job's whole history
    extra: list[str | Path] = ["--checkpoint", saved] if with_checkpoint else []
    code, text = dogqueue(capsys, "verify", "--db", path, "--archive", target, *extra)
    assert code == 1, text
    assert "no archive given holds them" in text


def _rechain_archived_tenant(live: Path, archive: Path, tenant: str) -> None:
    """Recompute the hashes of `tenant`'s events (all archived) from its first, then
    every copy of them: the live anchors and chain head, and both files' fingerprints
    of the archive."""
    previous, new = GENESIS, {}
    for seq, data in rows(
        archive, "SELECT seq, data FROM events WHERE tenant_id = ? ORDER BY seq", tenant
    ):
        previous = new[seq] = chain_hash(previous, int(seq), bytes(data))
    edit(archive, *[("UPDATE events SET hash = ? WHERE seq = ?", (h, s)) for s, h in new.items()])
    statements = [
        ("UPDATE chain_anchors SET hash = ? WHERE seq = ?", (h, s)) for s, h in new.items()
    ]
    last = max(new)
    statements.append(("UPDATE chain_heads SET hash = ? WHERE tenant_id = ?", (new[last], tenant)))
    edit(live, *statements)
    pairs = [
        (int(s), bytes(h)) for s, h in rows(archive, "SELECT seq, hash FROM events ORDER BY seq")
    ]
    digest = seq_hash_digest(pairs)
    for path in (live, archive):
        edit(path, ("UPDATE archive_cuts SET archive_digest = ?", (digest,)))


async def _globex_all_archived(path: Path, clock: FakeClock, ids: dict[str, str]) -> None:
    async with SqliteBackend(path, clock=clock) as backend:
        await backend.cancel_job(GLOBEX, ids["leased"])


@pytest.mark.parametrize("archived_before_the_checkpoint", [True, False])
def test_a_forged_archived_event_with_recomputed_hashes_is_caught(
    story_log: Story,
    tmp_path: Path,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    archived_before_the_checkpoint: bool,
) -> None:
    path, ids = story_log
    run_sync(_globex_all_archived(path, clock, ids))
    target = tmp_path / "a.db"
    if not archived_before_the_checkpoint:
        saved = checkpoint(capsys, path, tmp_path / "cp.json")
    archive_before(path, target, NOW + timedelta(days=1), NOW)
    if archived_before_the_checkpoint:
        saved = checkpoint(capsys, path, tmp_path / "cp.json")
    assert dogqueue(capsys, "verify", "--db", path, "--checkpoint", saved)[0] == 0
    # Forge who canceled globex's job (its last event), then rechain everything.
    seq, data = rows(
        target, "SELECT seq, data FROM events WHERE tenant_id = 'globex' ORDER BY seq DESC"
    )[0]
    event = decode_event(bytes(data), int(seq))
    assert isinstance(event, Canceled)
    forged = msgspec.structs.replace(event, actor="cli:mallory")
    edit(target, ("UPDATE events SET data = ? WHERE seq = ?", (encode_event(forged), seq)))
    _rechain_archived_tenant(path, target, "globex")
    alone = dogqueue(capsys, "verify", "--db", target)
    assert alone[0] == 0, alone[1]
    code, text = dogqueue(
        capsys, "verify", "--db", path, "--checkpoint", saved, "--archive", target
    )
    assert code == 1, text
    assert "differs from the checkpoint" in text


#: An archival record changed or removed, and whether verify finds it without and with
#: a checkpoint (the README's table).
RECORD_EDITS = {
    "changed": ("UPDATE archive_cuts SET jobs = jobs + 1", (False, True)),
    "removed": ("DELETE FROM archive_cuts", (True, True)),
}


@pytest.mark.parametrize("with_checkpoint", [False, True], ids=["plain", "checkpoint"])
@pytest.mark.parametrize("edit_kind", list(RECORD_EDITS))
def test_archival_records_are_pinned_by_the_checkpoint(
    story_log: Story,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit_kind: str,
    with_checkpoint: bool,
) -> None:
    path, _ = story_log
    target = tmp_path / "a.db"
    archive_before(path, target, NOW, NOW)
    saved = checkpoint(capsys, path, tmp_path / "cp.json")
    change, found = RECORD_EDITS[edit_kind]
    edit(path, (change, ()))
    extra: list[str | Path] = ["--checkpoint", saved] if with_checkpoint else []
    code, text = dogqueue(capsys, "verify", "--db", path, "--archive", target, *extra)
    assert code == (1 if found[with_checkpoint] else 0), text
    if with_checkpoint:
        assert "archival record(s) differ from the checkpoint's" in text


def test_a_forged_event_at_an_archived_position_is_caught(
    story_log: Story, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new tenant's first event slipped into the live log where archival left a gap:
    its chain starts at GENESIS, so its hash is recomputable without any secret."""
    path, _ = story_log
    target = tmp_path / "a.db"
    archive_before(path, target, NOW, NOW)
    saved = checkpoint(capsys, path, tmp_path / "cp.json")
    seq, data = rows(target, "SELECT seq, data FROM events WHERE type = 'enqueued'")[0]
    original = decode_event(bytes(data), int(seq))
    assert isinstance(original, Enqueued)
    forged = msgspec.structs.replace(original, tenant_id="evil", job_id="forged-1")
    forged_data = encode_event(forged)
    digest = chain_hash(GENESIS, int(seq), forged_data)
    job = fold([forged])
    edit(
        path,
        (
            "INSERT INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos)"
            " VALUES (?, 'evil', 'forged-1', 1, 'enqueued', ?, ?, 1)",
            (seq, forged_data, digest),
        ),
        (
            "INSERT INTO chain_heads (tenant_id, seq, hash, tpos) VALUES ('evil', ?, ?, 1)",
            (seq, digest),
        ),
        (Q["insert_job"], job_row(job)),
    )
    code, text = dogqueue(
        capsys, "verify", "--db", path, "--checkpoint", saved, "--archive", target
    )
    assert code == 1, text
    assert f"position {seq} holds different events in the live log and an archive" in text
