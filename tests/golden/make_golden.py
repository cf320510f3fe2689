"""Write the golden logs (run once per schema version; never rewrite an existing one).

    python tests/golden/make_golden.py tests/golden/story-v2

writes story-v2.db (the story of tests/audit/audit_workload.py), story-v2.ids.json (its
job ids by role) and story-v2.checkpoint.json. Run with an older dogqueue on the import
path to write an older version's log (a checkpoint is written only if it has a chain).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dogqueue import FakeClock
from dogqueue.backend.sqlite import SqliteBackend
from tests.audit.audit_workload import write_story


async def main(stem: Path) -> None:
    clock = FakeClock()
    async with SqliteBackend(stem.with_suffix(".db"), clock=clock) as backend:
        ids = await write_story(backend, clock)
    stem.with_suffix(".ids.json").write_text(json.dumps(ids, indent=2) + "\n")
    try:
        from dogqueue.audit.checkpoint import checkpoint_of, dump_checkpoint
        from dogqueue.audit.verify import verify_log
        from dogqueue.backend.sqlite.log import SqliteLogReader
    except ImportError:
        return
    log = SqliteLogReader(stem.with_suffix(".db"))
    report = await verify_log(log)
    await log.close()
    assert report.ok, report.problems
    checkpoint = checkpoint_of(report.events, report.heads)
    stem.with_suffix(".checkpoint.json").write_text(dump_checkpoint(checkpoint))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
