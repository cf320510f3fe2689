"""What `dogqueue verify` catches with and without an audit key and a checkpoint, each
attack made on a real SQLite file by a writer who has the file but not the key. The
README's table ("What verify catches") is this test's EXPECTED table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dogqueue import Canceled, FakeClock, InvalidInput, fold
from dogqueue.audit.verify import verify_log
from dogqueue.backend.kit.rows import job_row
from dogqueue.backend.sqlite import SqliteBackend
from dogqueue.backend.sqlite.queries import Q
from dogqueue.cli import main
from dogqueue.core.codec import decode_event, encode_event
from dogqueue.log.chain import GENESIS, chain_hash
from dogqueue.testing.conformance.fixtures import MakeBackend
from tests.audit.audit_workload import ACME, message, write_story
from tests.audit.file_edits import edit, rows
from tests.audit.sync_log import run_sync

KEY = b"k" * 32
#: Attack -> caught? in the modes (no key, no checkpoint), (no key, checkpoint),
#: (key, no checkpoint), (key, checkpoint).
EXPECTED = {
    "altered event": (True, True, True, True),
    "event deleted in the middle": (True, True, True, True),
    "events appended after the checkpoint": (False, False, True, True),
    "log rewritten and rechained": (False, True, True, True),
    "tail truncated": (False, True, False, True),
}
MODES = [(False, False), (False, True), (True, False), (True, True)]


def _rechain(path: Path, tenant: str, statements: list[tuple[str, tuple[object, ...]]]) -> None:
    """Apply `statements`, then recompute the tenant's whole chain without a key (all the
    attacker can do) and its stored head."""
    edit(path, *statements)
    previous = GENESIS
    updates: list[tuple[str, tuple[object, ...]]] = []
    for seq, data in rows(
        path, "SELECT seq, data FROM events WHERE tenant_id = ? ORDER BY seq", tenant
    ):
        previous = chain_hash(previous, seq, bytes(data))
        updates.append(("UPDATE events SET hash = ? WHERE seq = ?", (previous, seq)))
    seq, tpos = rows(
        path, "SELECT seq, tpos FROM events WHERE tenant_id = ? ORDER BY seq DESC", tenant
    )[0]
    updates.append(
        (
            "UPDATE chain_heads SET seq = ?, hash = ?, tpos = ? WHERE tenant_id = ?",
            (seq, previous, tpos, tenant),
        )
    )
    edit(path, *updates)


def _history(path: Path, job_id: str) -> list[Any]:
    found = rows(path, "SELECT seq, data FROM events WHERE job_id = ? ORDER BY version", job_id)
    return [decode_event(bytes(data), seq) for seq, data in found]


def alter(path: Path, ids: dict[str, str]) -> None:
    seq = rows(path, "SELECT seq FROM events WHERE job_id = ?", ids["canceled"])[-1][0]
    edit(path, ("UPDATE events SET data = data || x'00' WHERE seq = ?", (seq,)))


def delete_in_the_middle(path: Path, ids: dict[str, str]) -> None:
    history = _history(path, ids["retried"])
    edit(path, ("DELETE FROM events WHERE seq = ?", (history[1].seq,)))


def append(path: Path, ids: dict[str, str]) -> None:
    """Cancel a waiting job by a well-formed event at the log's end, linked to the stored
    chain head with a plain hash, with its projection row, status counts and chain head
    to match."""
    history = _history(path, ids["waiting"])
    last = history[-1]
    seq = rows(path, "SELECT max(seq) FROM events")[0][0] + 1
    forged = Canceled(
        tenant_id=last.tenant_id,
        job_id=last.job_id,
        version=last.version + 1,
        seq=seq,
        at=last.at + timedelta(minutes=1),
        actor="cli:mallory",
    )
    data = encode_event(forged)
    _, head, tpos = rows(path, "SELECT seq, hash, tpos FROM chain_heads WHERE tenant_id = 'acme'")[
        0
    ]
    digest = chain_hash(bytes(head), seq, data)
    edit(
        path,
        (
            "INSERT INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos)"
            " VALUES (?, 'acme', ?, ?, 'canceled', ?, ?, ?)",
            (seq, forged.job_id, forged.version, data, digest, tpos + 1),
        ),
        (
            "UPDATE chain_heads SET seq = ?, hash = ?, tpos = ? WHERE tenant_id = 'acme'",
            (seq, digest, tpos + 1),
        ),
        (
            "INSERT OR REPLACE" + Q["insert_job"].removeprefix("INSERT"),
            job_row(fold([*history, forged])),
        ),
        (  # and the status counts, so that the projection agrees with itself
            "UPDATE job_counts SET jobs = jobs - 1 WHERE tenant_id = 'acme' AND status = ?",
            (fold(history).status.value,),
        ),
        (Q["add_to_job_count"], ("acme", "canceled", 1)),
    )


def rewrite(path: Path, ids: dict[str, str]) -> None:
    """Change who canceled a job (no projection column holds it) and rechain."""
    seq, data = rows(
        path, "SELECT seq, data FROM events WHERE job_id = ? ORDER BY version DESC", ids["canceled"]
    )[0]
    event = decode_event(bytes(data), seq)
    assert isinstance(event, Canceled)
    forged = encode_event(
        Canceled(
            **{**{f: getattr(event, f) for f in event.__struct_fields__}, "actor": "cli:mallory"}
        )
    )
    _rechain(path, "acme", [("UPDATE events SET data = ? WHERE seq = ?", (forged, seq))])


def truncate(path: Path, ids: dict[str, str]) -> None:
    """Remove the tenant's last job (the log's tail) with its row and its count, and roll
    the stored chain head back to the event before: every remaining hash is genuine."""
    job_id = ids["waiting_behind"]
    (status,) = rows(path, "SELECT status FROM jobs WHERE job_id = ?", job_id)[0]
    edit(
        path,
        ("DELETE FROM events WHERE job_id = ?", (job_id,)),
        ("DELETE FROM jobs WHERE job_id = ?", (job_id,)),
        (
            "UPDATE job_counts SET jobs = jobs - 1 WHERE tenant_id = 'acme' AND status = ?",
            (status,),
        ),
    )
    seq, digest, tpos = rows(
        path, "SELECT seq, hash, tpos FROM events WHERE tenant_id = 'acme' ORDER BY seq DESC"
    )[0]
    edit(
        path,
        (
            "UPDATE chain_heads SET seq = ?, hash = ?, tpos = ? WHERE tenant_id = 'acme'",
            (seq, digest, tpos),
        ),
    )


ATTACKS = {
    "altered event": alter,
    "event deleted in the middle": delete_in_the_middle,
    "events appended after the checkpoint": append,
    "log rewritten and rechained": rewrite,
    "tail truncated": truncate,
}


async def _story(path: Path, key: bytes | None) -> dict[str, str]:
    clock = FakeClock()
    async with SqliteBackend(path, clock=clock, audit_key=key) as backend:
        return await write_story(backend, clock)


def _verify(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main(["verify", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize(
    ("keyed", "checkpointed"), MODES, ids=["plain", "checkpoint", "key", "key+checkpoint"]
)
def test_what_verify_catches(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    attack: str,
    keyed: bool,
    checkpointed: bool,
) -> None:
    path, key_file, saved = tmp_path / "queue.db", tmp_path / "audit.key", tmp_path / "cp.json"
    key_file.write_bytes(KEY + b"\n")
    key = KEY if keyed else None
    ids = run_sync(_story(path, key))
    key_args: list[str | Path] = ["--key-file", key_file] if keyed else []
    checkpoint_args: list[str | Path] = ["--checkpoint", saved] if checkpointed else []
    assert main(["checkpoint", "--db", str(path), "--out", str(saved)]) == 0
    code, text = _verify(capsys, "--db", path, *key_args)
    assert code == 0, text
    ATTACKS[attack](path, ids)
    code, text = _verify(capsys, "--db", path, *key_args, *checkpoint_args)
    caught = EXPECTED[attack][MODES.index((keyed, checkpointed))]
    assert code == (1 if caught else 0), text
    assert "Traceback" not in text


def test_a_keyed_log_verifies_only_under_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "queue.db"
    run_sync(_story(path, KEY))
    code, text = _verify(capsys, "--db", path)
    assert code == 1 and "verify with it: --key-file" in text
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"w" * 32)
    code, text = _verify(capsys, "--db", path, "--key-file", wrong)
    assert code == 1 and "not written with this audit key" in text
    right = tmp_path / "audit.key"
    right.write_bytes(KEY)
    assert _verify(capsys, "--db", path, "--key-file", right)[0] == 0


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as raised:
        SqliteBackend(tmp_path / "q.db", audit_key=b"short")
    assert raised.value.field == "audit_key"


async def test_every_backend_writes_a_keyed_chain(make_backend: MakeBackend) -> None:
    async with make_backend(audit_key=KEY) as backend:
        job_id = await backend.enqueue(ACME, message())
        lease = await backend.dequeue(ACME, ["default"])
        assert lease is not None and lease.job_id == job_id
        await backend.ack_complete(ACME, lease)
        log = backend.log_reader()
        assert (await verify_log(log, audit_key=KEY)).ok
        assert not (await verify_log(log)).ok
        assert not (await verify_log(log, audit_key=b"w" * 32)).ok
