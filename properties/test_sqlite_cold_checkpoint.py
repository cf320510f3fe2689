"""The SQLite backend against the reference model with its checkpoint read lazily at the
smallest sizes: checkpoint index pages of two entries, a checkpoint every few events
(written in the background while the run goes on), ended jobs forgotten as soon as a
checkpoint covers them. Every reopen (a rule of the machine) starts from a checkpoint
whose live jobs stay on disk until read; the model must not notice."""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from dogqueue.backend.sqlite import catchup, projection
from dogqueue.testing import SqliteFactory, backend_state_machine

from .test_backend_state_machine import budget


def test_a_lazily_read_checkpoint_matches_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection, "COLD_PAGE", 2)
    monkeypatch.setattr(projection, "LET_GO_AT", 1)
    monkeypatch.setattr(catchup, "CHECKPOINT_EVERY_EVENTS", 3)
    factory = SqliteFactory()
    run_state_machine_as_test(backend_state_machine(factory), settings=budget(factory))
