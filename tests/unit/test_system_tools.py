"""A missing system tool fails its test with one line naming the package to install."""

import subprocess
import sys
from pathlib import Path

from tests.utils.processes import ROOT

TEST = """
from tests.utils.redis_server import redis_server

def test_needs_redis(tmp_path):
    with redis_server(tmp_path):
        pass
"""


def test_a_missing_tool_fails_with_one_line_naming_its_package(tmp_path: Path) -> None:
    test = tmp_path / "test_needs_redis.py"
    test.write_text(TEST)
    # A PATH where redis-server cannot be found, as on a machine without the package.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(test)],
        cwd=ROOT, env={"PATH": str(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "redis-server is not installed: apt-get install redis-server" in result.stdout
    assert "Traceback" not in result.stdout and "redis_command" not in result.stdout
