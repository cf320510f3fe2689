"""schema_costs.py's variants still apply to the schema the migrations build."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import schema_costs


@pytest.mark.parametrize("variant", list(schema_costs.VARIANTS))
def test_every_variant_runs_the_lifecycle(tmp_path: Path, variant: str) -> None:
    wal, cpu = schema_costs.lifecycle(tmp_path, 64, schema_costs.VARIANTS[variant])
    assert wal > 0 and cpu >= 0
