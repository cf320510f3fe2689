"""Hypothesis profiles for the property suite: "ci" (default) and "deep"."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]


def register_profiles() -> None:
    """Register "ci" (derandomized and bounded) and "deep" (thousands of long runs,
    failures kept in `.hypothesis/examples` to be replayed first next time)."""
    settings.register_profile(
        "ci",
        max_examples=40,
        stateful_step_count=40,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=_SLOW_IS_FINE,
        print_blob=True,
    )
    settings.register_profile(
        "deep",
        max_examples=3000,
        stateful_step_count=150,
        derandomize=False,
        database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
        deadline=None,
        suppress_health_check=_SLOW_IS_FINE,
        print_blob=True,
    )


def load_profile() -> str:
    """Load the profile named by $HYPOTHESIS_PROFILE (default "ci"); return its name."""
    register_profiles()
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    settings.load_profile(name)
    return name
