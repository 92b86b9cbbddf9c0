"""`alma loadtest connections`: its plan, its file-descriptor check and its idle figures."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from loadtests import run
from loadtests.processes import StartError, raise_descriptor_limit
from loadtests.run import Marks, Resources, Scenario, Summary


def _summary(**figures: object) -> Summary:
    base: dict[str, object] = dict(
        target="alma", scenario="connections", users=10_100, duration_s=130.0, runs=0,
        runs_per_second=0.0, failures=0, ttft_p50_ms=None, ttft_p95_ms=None,
        ttft_p99_ms=None, run_p50_ms=None, run_p95_ms=None, run_p99_ms=None,
        peak_rss_mib=0.0, mean_cpu_cores=0.0, errors={}, requests=[],
    )  # fmt: skip
    return Summary(**{**base, **figures})  # type: ignore[arg-type]


def test_ten_thousand_idle_sockets_connect_in_40_s_and_outlast_two_pings() -> None:
    plan = run.connections(10_000, ping=(20.0, 20.0))

    assert (plan.users, plan.idle, plan.spawn_rate) == (10_100, 10_000, 250)
    # Two unanswered pings would have closed a socket before the load ends.
    assert plan.hold >= 2 * 20 + 20
    assert plan.duration == 40 + 1 + plan.settle + plan.hold
    assert plan.classes == ("IdleSocketUser", "ChatUser")


def test_a_thousand_idle_sockets_keep_the_old_spawn_rate() -> None:
    assert run.SCENARIOS["connections"].spawn_rate == 100
    assert run.connections(1_000, 5, ping=(1.0, 1.0), hold=10).hold == 10


def test_the_idle_count_comes_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "server_ping", lambda: (20.0, 20.0))
    parser = run._parser()

    plan = run.scenario_of(parser.parse_args(["connections", "--idle", "10000"]))
    assert (plan.users, plan.idle) == (10_100, 10_000)
    assert run.scenario_of(parser.parse_args(["connections"])).idle == 1_000
    with pytest.raises(ValueError, match="connections scenario"):
        run.scenario_of(parser.parse_args(["steady", "--idle", "5"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["connections", "--idle", "-1"])


def _limits(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int) -> list[tuple[int, int]]:
    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: set_to.append(limits))
    return set_to


def test_the_soft_file_limit_is_raised_to_the_hard_one(monkeypatch: pytest.MonkeyPatch) -> None:
    set_to = _limits(monkeypatch, soft=1_024, hard=65_536)
    assert raise_descriptor_limit(12_000) == 65_536
    assert set_to == [(65_536, 65_536)]


def test_a_hard_file_limit_below_the_load_fails_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_to = _limits(monkeypatch, soft=1_024, hard=4_096)
    needed = run.descriptors_needed(run.connections(10_000, ping=(20.0, 20.0)))
    assert needed > 10_100
    with pytest.raises(StartError, match="hard limit"):
        raise_descriptor_limit(needed)
    assert set_to == []


def test_marks_are_read_on_the_samples_clock(tmp_path: Path) -> None:
    path = tmp_path / "marks.jsonl"
    lines = [
        {"mark": "spawned", "users": 10, "at": 1005.0},
        {"mark": "load", "at": 1015.0},
        {"mark": "spawned", "users": 11, "at": 1015.5},
        {"mark": "spawned", "users": 10, "at": 1090.0},  # a later ramp to 10: not the first
        {"mark": "end", "at": 1085.5},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    marks = run.read_marks(path, epoch=1000.0)
    assert marks == Marks(spawned={10: 5.0, 11: 15.5}, load=15.0, end=85.5)
    assert run.read_marks(tmp_path / "none.jsonl", epoch=0.0) == Marks()


def test_memory_per_idle_connection_is_read_while_the_idle_sockets_are_alone() -> None:
    mib = 2**20
    resources = Resources(rss_before=100 * mib)
    for second in range(1, 31):
        idle = min(second * 100, 1_000)
        # The active users arrive at 20 s: memory and sockets jump.
        rss = (100 + idle // 100) * mib if second < 20 else 300 * mib
        resources.samples.append((float(second), 0.5, rss))
        resources.websockets.append((float(second), idle if second < 20 else 1_100))
    plan = Scenario("connections", users=1_100, spawn_rate=100, duration=30, idle=1_000,
                    description="")  # fmt: skip
    marks = Marks(spawned={1_000: 10.0, 1_100: 21.0}, load=20.0, end=30.0)

    alone = run.idle_alone(plan, marks, resources)
    assert alone == (110 * mib, 1_000)
    assert run.kib_each(100 * mib, *alone) == 10.2  # 10 MiB over 1,000 sockets
    assert run.held_window(plan, marks, seconds=31.0) == (21.0, 30.0)
    assert run.held_window(plan, Marks(), seconds=30.0) == (15.0, 30.0)
    assert run.idle_alone(plan, Marks(spawned={1_000: 10.0}), resources) is None
    assert run.kib_each(0, 1, 0) is None


def test_an_idle_socket_missing_from_the_servers_gauge_fails_the_run() -> None:
    assert run.missing_idle(_summary(idle_requested=10_000, websockets_held=10_003)) is None
    short = run.missing_idle(_summary(idle_requested=10_000, websockets_held=9_990))
    assert short is not None and "9,990" in short
    assert run.missing_idle(_summary(idle_requested=10_000)) is not None
    assert run.missing_idle(_summary(target="langgraph-dev", idle_requested=10)) is None
    assert run.missing_idle(_summary()) is None


def test_the_report_gives_every_idle_figure(tmp_path: Path) -> None:
    plan = run.connections(10_000, ping=(20.0, 20.0))
    summary = _summary(
        idle_requested=10_000, websockets_held=10_020, websockets_peak=10_100,
        websockets_held_window=(62.0, 132.0), rss_before_mib=160.0, idle_alone_rss_mib=600.0,
        idle_alone_websockets=10_000, idle_kib_each=45.1, peak_rss_mib=900.0,
    )  # fmt: skip
    markdown = run.report(tmp_path, plan, [summary], workers=1, descriptors=20_000)

    row = ("| alma | 10,000 | 10,020 / 10,100 | 62–132 | 160.0 MiB | 600.0 MiB (10,000) | "
           "900.0 MiB | 45.1 KiB |")  # fmt: skip
    assert row in markdown
    assert "open files allowed: 20,000 per process" in markdown
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["open_files_limit"] == 20_000
    assert saved["summaries"][0]["idle_kib_each"] == 45.1
