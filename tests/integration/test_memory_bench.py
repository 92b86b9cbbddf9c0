"""`python -m loadtests.memory_bench` on a real redis-server, with tiny sizes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis as redis_py

from loadtests.memory_bench import OPERATIONS, SAVERS, main
from tests.utils.redis_server import RedisServer

pytestmark = pytest.mark.integration

ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)$")
TINY = ["--threads", "2", "--steps", "5", "--channels", "3", "--concurrency", "2"]


def table_rows(output: str) -> dict[tuple[str, str], tuple[int, float, float, float]]:
    rows = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            saver, operation, count, p50, p99, rate = match.groups()
            rows[saver, operation] = (int(count), float(p50), float(p99), float(rate))
    return rows


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

    report = json.loads(report_path.read_text())
    assert {(row["saver"], row["operation"]) for row in report["operations"]} == set(rows)
    assert [run["saver"] for run in report["concurrency"]] == list(SAVERS)


def test_bench_leaves_no_keys_behind(
    redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*TINY, "--redis-url", redis.url]) == 0

    output = capsys.readouterr().out
    prefix = re.search(r"under (alma-bench-\w+)", output)
    assert prefix is not None and "clean-up: 0 benchmark keys left" in output
    client = redis_py.Redis.from_url(redis.url)
    try:
        assert list(client.scan_iter(match=f"{prefix.group(1)}*")) == []
    finally:
        client.close()
