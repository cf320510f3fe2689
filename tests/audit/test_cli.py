"""The audit and inspection commands, run as a user runs them: in a subprocess."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.audit.cli_run import dogqueue

Story = tuple[Path, dict[str, str]]
COMMANDS = ["history", "jobs", "stats", "explain", "replay", "verify", "checkpoint", "archive"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str) -> None:
    result = dogqueue(command, "--help")
    assert result.returncode == 0
    assert "--db PATH" in result.stdout
    assert "SQLite database file" in result.stdout


def test_history_prints_a_timeline_and_json_lines(story_log: Story) -> None:
    path, ids = story_log
    result = dogqueue("history", "--db", path, "--tenant", "acme", ids["retried"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["seq", "time", "event", "attempt", "token", "error", "delay"]
    assert [line.split()[3] for line in lines[1:]] == [
        "enqueued",
        "leased",
        "released",
        "leased",
        "failed",
        "leased",
        "expired",
    ]
    assert "timeout talking to SMTP" in result.stdout and "retry at" in result.stdout
    as_json = dogqueue("history", "--db", path, "--tenant", "acme", ids["retried"], "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["type"] for e in events][-1] == "expired"
    assert all(e["job_id"] == ids["retried"] for e in events)


def test_history_of_an_unknown_job_fails(story_log: Story) -> None:
    result = dogqueue("history", "--db", story_log[0], "--tenant", "acme", "nope")
    assert result.returncode == 2


def test_jobs_filters_and_looks_into_the_past(story_log: Story) -> None:
    path, ids = story_log
    result = dogqueue("jobs", "--db", path, "--tenant", "acme", "--status", "enqueued", "--json")
    listed = {json.loads(line)["job_id"] for line in result.stdout.splitlines()}
    assert listed == {ids["scheduled"], ids["waiting"], ids["waiting_behind"]}
    result = dogqueue("jobs", "--db", path, "--tenant", "acme", "--type", "resize")
    assert ids["canceled"] in result.stdout and ids["completed"] not in result.stdout
    result = dogqueue("jobs", "--db", path, "--tenant", "acme", "--limit", "1")
    assert "... 5 more" in result.stdout
    past = dogqueue("jobs", "--db", path, "--tenant", "acme", "--as-of", "4", "--json")
    states = {
        json.loads(line)["job_id"]: json.loads(line)["status"] for line in past.stdout.splitlines()
    }
    assert states == {
        ids["completed"]: "enqueued",
        ids["retried"]: "enqueued",
        ids["canceled"]: "enqueued",
        ids["scheduled"]: "enqueued",
    }


def test_stats_counts_and_ages(story_log: Story) -> None:
    path, _ = story_log
    result = dogqueue("stats", "--db", path, "--json", "--as-of", "2030-01-01T01:00:00Z")
    stats = json.loads(result.stdout)
    assert stats["jobs"] == 7
    assert stats["by_status"] == {
        "canceled": 1,
        "completed": 1,
        "enqueued": 3,
        "failed": 1,
        "leased": 1,
    }
    assert stats["by_queue"] == {"default": 6, "images": 1}
    assert stats["oldest_ready_age_seconds"] == pytest.approx(45 * 60 - 3)
    text = dogqueue("stats", "--db", path, "--tenant", "globex")
    assert "jobs: 1 (tenant globex)" in text.stdout


def test_explain_says_why(story_log: Story) -> None:
    path, ids = story_log
    result = dogqueue(
        "explain",
        "--db",
        path,
        "--tenant",
        "acme",
        ids["waiting_behind"],
        "--now",
        "2030-01-01T01:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    assert "1 job(s) of higher priority or enqueued earlier are ahead" in result.stdout


def test_replay_reports_speed_and_a_matching_projection(story_log: Story) -> None:
    result = dogqueue("replay", "--db", story_log[0])
    assert result.returncode == 0, result.stderr
    assert "replayed 18 events into 7 jobs" in result.stdout and "events/s" in result.stdout
    assert "the stored projection equals the fold of the log" in result.stdout
    assert "replaying: 100% (18/18)" in result.stderr


def test_replay_finds_and_fixes_a_wrong_projection(story_log: Story) -> None:
    path, ids = story_log
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM jobs WHERE job_id = ?", (ids["waiting"],))
    conn.close()
    assert dogqueue("replay", "--db", path).returncode == 1
    fixed = dogqueue("replay", "--db", path, "--fix")
    assert fixed.returncode == 0 and "rebuilt from 18 events" in fixed.stdout
    assert dogqueue("replay", "--db", path).returncode == 0


def test_checkpoint_then_verify_catches_a_truncated_tail(story_log: Story, tmp_path: Path) -> None:
    path, _ = story_log
    saved = tmp_path / "head.json"
    assert dogqueue("checkpoint", "--db", path, "--out", saved).returncode == 0
    clean = dogqueue("verify", "--db", path, "--checkpoint", saved)
    assert clean.returncode == 0 and "OK, 18 events" in clean.stdout
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM events WHERE seq = 18")
    conn.close()
    broken = dogqueue("verify", "--db", path, "--checkpoint", saved)
    assert broken.returncode == 1
    assert "first bad position: 18" in broken.stdout


def test_verify_reports_the_first_bad_position(story_log: Story) -> None:
    path, _ = story_log
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE events SET data = data || x'00' WHERE seq IN (5, 12)")
    conn.close()
    result = dogqueue("verify", "--db", path)
    assert result.returncode == 1
    assert "FAILED, first bad position: 5" in result.stdout


def test_archive_then_read_and_verify_both_files(story_log: Story, tmp_path: Path) -> None:
    path, ids = story_log
    target = tmp_path / "2029.db"
    result = dogqueue("archive", "--db", path, "--before", "2030-01-02", "--to", target)
    assert result.returncode == 0, result.stderr
    assert "archived 3 job(s)" in result.stdout
    gone = dogqueue("history", "--db", path, "--tenant", "acme", ids["completed"])
    assert gone.returncode == 2
    kept = dogqueue(
        "history", "--db", path, "--archive", target, "--tenant", "acme", ids["completed"]
    )
    assert kept.returncode == 0 and "completed" in kept.stdout
    verified = dogqueue("verify", "--db", path, "--archive", target)
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.count(": OK") == 2
    alone = dogqueue("verify", "--db", target)
    assert alone.returncode == 0, alone.stdout


def test_a_missing_database_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    result = dogqueue("verify", "--db", tmp_path / "nope.db")
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert not (tmp_path / "nope.db").exists()


def test_an_unreadable_checkpoint_is_an_error(story_log: Story, tmp_path: Path) -> None:
    missing = dogqueue("verify", "--db", story_log[0], "--checkpoint", tmp_path / "no.json")
    assert missing.returncode == 2 and "checkpoint: cannot be read" in missing.stderr
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    bad = dogqueue("verify", "--db", story_log[0], "--checkpoint", tmp_path / "bad.json")
    assert bad.returncode == 2 and "is not a dogqueue checkpoint" in bad.stderr
