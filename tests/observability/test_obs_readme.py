"""The README's Observability section: its Python blocks run, its scrape sample is real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dogqueue import FakeClock
from dogqueue.backend.memory import MemoryBackend
from dogqueue.observability import MetricsReader
from dogqueue.observability.prometheus import render
from tests.observability.obs_workload import run_workload

README = Path(__file__).parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("\n## Observability\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(3))
def test_python_blocks_run(index: int, tmp_path: Path) -> None:
    code = blocks("python")
    assert len(code) == 3
    done = subprocess.run(
        [sys.executable, "-c", code[index]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr


async def test_scrape_sample_matches_a_real_scrape(clock: FakeClock) -> None:
    async with MemoryBackend(clock=clock) as backend:
        await run_workload(backend, clock)
        real = render(await MetricsReader(backend).snapshot()).decode()
    (sample,) = blocks("text")

    def series(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    shown, scraped = series(sample), series(real)
    assert len(shown) >= 20
    for key, value in shown.items():
        assert key in scraped
        if key[0] != "dogqueue_oldest_ready_job_age_seconds":  # depends on a random jitter
            assert scraped[key] == value, key
