"""lone_enqueue.py's measurements still run against the current backend and schema."""

from __future__ import annotations

from pathlib import Path

from bench import lone_enqueue


def test_the_bare_commit_floor_is_measured(tmp_path: Path) -> None:
    assert lone_enqueue.bare_commit_us(tmp_path / "bare.db", 20) > 0


async def test_every_hop_and_the_statements_alone_are_measured(tmp_path: Path) -> None:
    figures = await lone_enqueue.enqueue_hops_us(tmp_path / "queue.db", 20)
    assert set(figures) == {*lone_enqueue.HOPS, "enqueue", "statements"}
    assert all(value > 0 for value in figures.values())
