"""`python -m loadtests.memory_bench` on a real redis-server, with tiny sizes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from langgraph_checkpoint_plainredis import AsyncRedisSaver as PlainRedisSaver

from loadtests.memory_bench import (
    COMPARED,
    GET_LATEST,
    MODES,
    OPERATIONS,
    PLAINREDIS,
    PUT,
    PUT_WRITES,
    SAVERS,
    main,
)
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration

ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)$")
MODE = "|".join(MODES)
STEP_ROW = re.compile(
    rf"^(\S+)\s+({MODE})\s+(\d+)\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)$"
)
CALL_ROW = re.compile(rf"^(\S+)\s+({MODE})\s+(\S+)\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)$")
RATIO = re.compile(r"^steps/s, ALMA ÷ plainredis: sequential (\S+), concurrent (\S+)$", re.M)
# Two steps a run: the second run's aget_tuple reads back a written checkpoint.
TINY = ["--threads", "2", "--steps", "5", "--channels", "3", "--concurrency", "2"]
TINY += ["--run-steps", "2"]
COMPARED_CALLS = (PUT, PUT_WRITES, GET_LATEST)


def table_rows(output: str) -> dict[tuple[str, str], tuple[int, float, float, float]]:
    rows = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            saver, operation, count, p50, p99, rate = match.groups()
            rows[saver, operation] = (int(count), float(p50), float(p99), float(rate))
    return rows


def step_rows(output: str) -> dict[tuple[str, str], tuple[float, ...]]:
    """(saver, mode) -> tasks, steps, seconds, steps/s, step p50, step p99."""
    return {
        (match[1], match[2]): tuple(float(value) for value in match.groups()[2:])
        for match in map(STEP_ROW.match, output.splitlines())
        if match
    }


def call_rows(output: str) -> dict[tuple[str, str, str], tuple[int, float, float]]:
    rows = {}
    for match in map(CALL_ROW.match, output.splitlines()):
        if match:
            saver, mode, operation, count, p50, p99 = match.groups()
            rows[saver, mode, operation] = (int(count), float(p50), float(p99))
    return rows


def assert_compared(output: str, saver: str) -> None:
    steps, calls = step_rows(output), call_rows(output)
    for mode in MODES:
        tasks, count, seconds, rate, p50, p99 = steps[saver, mode]
        assert tasks >= 1 and count == 10 and seconds > 0 and rate > 0, (saver, mode)
        assert 0 < p50 <= p99, (saver, mode)
        for operation in COMPARED_CALLS:
            count, p50, p99 = calls[saver, mode, operation]
            assert count > 0 and 0 < p50 <= p99, (saver, mode, operation)


def assert_comparison_json(comparison: dict[str, Any]) -> None:
    runs = {(run["saver"], run["mode"]): run for run in comparison["runs"]}
    assert set(runs) == {(saver, mode) for mode in MODES for saver in COMPARED}
    for run in runs.values():
        assert run["steps_per_s"] > 0 and 0 < run["step_p50_ms"] <= run["step_p99_ms"]
        assert {row["operation"] for row in run["operations"]} == set(COMPARED_CALLS)
    assert all(ratio > 0 for ratio in comparison["ratios"].values())
    assert set(comparison["ratios"]) == set(MODES)
    assert comparison["failures"] == []
    assert comparison["ttl_seconds"] > 0


def test_bench_prints_every_operation_for_both_savers(
    redis: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "bench.json"

    status = main([*TINY, "--redis-url", redis.url, "--json", str(report_path)])

    output = capsys.readouterr().out
    assert status == 0, output
    rows = table_rows(output)
    for saver in SAVERS:
        for operation in OPERATIONS:
            count, p50, p99, rate = rows[saver, operation]
            assert count > 0 and p50 > 0 and p99 >= p50 and rate > 0, (saver, operation)
        assert re.search(rf"^concurrent {saver}: 2 tasks .* = \d+\.\d ops/s", output, re.M)
    assert re.search(r"^redis: \d+\.\d+", output, re.M)
    for saver in COMPARED:
        assert_compared(output, saver)
    ratios = RATIO.search(output)
    assert ratios is not None and all(float(ratio) > 0 for ratio in ratios.groups()), output
    assert "failures: none" in output

    report = json.loads(report_path.read_text())
    assert {(row["saver"], row["operation"]) for row in report["operations"]} == set(rows)
    assert [run["saver"] for run in report["concurrency"]] == list(SAVERS)
    assert_comparison_json(report["comparison"])


def assert_no_keys_under(redis: RedisServer, prefixes: set[str]) -> None:
    client = redis_py.Redis.from_url(redis.url)
    try:
        for prefix in prefixes:
            assert list(client.scan_iter(match=f"{prefix}*")) == [], prefix
    finally:
        client.close()


def prefixes_in(output: str) -> set[str]:
    return set(re.findall(r"\b((?:alma|plainredis)-bench-[0-9a-f]+)", output))


def test_bench_leaves_no_keys_behind(
    redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*TINY, "--redis-url", redis.url]) == 0

    output = capsys.readouterr().out
    prefixes = prefixes_in(output)
    assert len(prefixes) == 3 and "clean-up: 0 benchmark keys left" in output
    assert re.search(r"threads: ALMA 0;", output)
    assert_no_keys_under(redis, prefixes)


def test_a_failing_saver_is_reported_with_its_call(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(PlainRedisSaver, "aput_writes", broken)

    status = main([*TINY, "--only", "comparison", "--redis-url", redis.url])

    output = capsys.readouterr().out
    assert status == 1, output
    assert_compared(output, "ALMA")
    for mode in MODES:
        assert re.search(rf"^{PLAINREDIS}\s+{mode}\s+FAILED in {PUT_WRITES}$", output, re.M)
        assert f"FAILED: {PLAINREDIS}, {mode}, {PUT_WRITES}: RuntimeError: boom" in output
    assert "sequential n/a (a saver failed), concurrent n/a (a saver failed)" in output
    assert not table_rows(output), "--only comparison prints no operations table"
    prefixes = prefixes_in(output)
    assert len(prefixes) == 2
    assert_no_keys_under(redis, prefixes)
