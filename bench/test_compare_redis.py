"""compare_redis.py runs each system's whole lifecycle on a redis-server of its own and
completes every job; peers that are not installed are skipped. No figure is asserted:
`python bench/compare_redis.py` measures them."""

from __future__ import annotations

import gc

import pytest

from bench import compare_redis


# streaq (on anyio) leaves a memory stream unclosed: it is collected inside this test,
# where its ResourceWarning is ignored, not in whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", compare_redis.SYSTEMS)
def test_every_job_completes(name: str) -> None:
    reason = compare_redis.missing(name)
    if reason is not None:
        pytest.skip(f"{name} cannot run here: {reason}")
    (measured,) = compare_redis.main(["--jobs", "60", "--only", name])
    gc.collect()
    if name in compare_redis.PEERS:
        # A peer promises at least once: it may run a job twice (saq ran 61 of 60 once,
        # on a loaded machine), but may lose none.
        assert measured.completed >= 60
    else:
        assert measured.completed == 60
    assert measured.aof_per_job > 0
