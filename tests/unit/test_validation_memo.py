"""The memo of accepted names in `check_name` skips the scans for names seen before; it
must never accept what the full check refuses, and must stay bounded."""

from __future__ import annotations

import pytest

from dogqueue.core import validation
from dogqueue.core.errors import InvalidInput


class LookAlike(str):
    """A str subclass that compares equal to, and hashes like, another name."""

    def __new__(cls, text: str, looks_like: str) -> LookAlike:
        made = super().__new__(cls, text)
        made.looks_like = looks_like  # type: ignore[attr-defined]
        return made

    def __eq__(self, other: object) -> bool:
        return other == self.looks_like  # type: ignore[attr-defined,no-any-return]

    def __hash__(self) -> int:
        return hash(self.looks_like)  # type: ignore[attr-defined]


def test_a_look_alike_of_an_accepted_name_is_still_checked() -> None:
    assert validation.check_name("queue", "emails") == "emails"
    assert "emails" in validation._ACCEPTED_NAMES
    with pytest.raises(InvalidInput, match="control characters"):
        validation.check_name("queue", LookAlike("emails\x00", "emails"))


def test_refused_names_are_never_remembered() -> None:
    for bad in ("", "a\x00b", "x" * (validation.MAX_NAME_LENGTH + 1), "\ud800"):
        with pytest.raises(InvalidInput):
            validation.check_name("queue", bad)
        assert bad not in validation._ACCEPTED_NAMES
        with pytest.raises(InvalidInput):  # refused again, not served from the memo
            validation.check_name("queue", bad)


def test_unique_values_such_as_keys_are_not_remembered() -> None:
    validation.check_name("idempotency_key", "order-7731")
    assert "order-7731" not in validation._ACCEPTED_NAMES


def test_the_memo_stays_bounded() -> None:
    for index in range(validation._ACCEPTED_NAMES_MAX * 2 + 3):
        validation.check_name("tenant_id", f"tenant-{index}")
        assert len(validation._ACCEPTED_NAMES) <= validation._ACCEPTED_NAMES_MAX
