"""The deploy examples (systemd unit, docker compose) parse, their worker command lines
are accepted by `dogqueue worker`, the stop timeouts exceed the grace period, and the
README shows them as they are."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from dogqueue.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"


def worker_args(argv: list[str]) -> Any:
    """The namespace `dogqueue worker` parses from a command line ending in its args."""
    start = argv.index("worker")
    return build_parser().parse_args(argv[start:])


def test_the_systemd_unit_parses_and_stops_after_the_grace_period() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(DEPLOY / "dogqueue-worker.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    args = worker_args(shlex.split(service["ExecStart"]))
    assert args.target == "myapp.jobs:make_adapter" and args.queues == ["*"]
    assert args.workers == 4
    assert float(service["TimeoutStopSec"]) > args.grace
    assert service["KillSignal"] == "SIGTERM"
    assert worker_args(shlex.split(service["ExecStartPre"])).check


def test_the_compose_file_parses_and_stops_after_the_grace_period() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    args = worker_args(worker["command"])
    assert args.queues == ["*"] and args.workers == 2 and args.db == "/data/queue.db"
    assert float(worker["stop_grace_period"].rstrip("s")) > args.grace
    assert worker_args(worker["healthcheck"]["test"][1:]).check
    web = compose["services"]["web"]
    assert web["volumes"] == worker["volumes"]  # one host, one file


def test_the_readme_shows_the_deploy_files_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:ini|yaml)\n(.*?)```", readme, flags=re.DOTALL)
    for name in ("dogqueue-worker.service", "docker-compose.yml"):
        assert (DEPLOY / name).read_text() in blocks
