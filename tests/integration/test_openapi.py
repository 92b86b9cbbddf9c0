"""Schemathesis drives every operation of the service's own OpenAPI document."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from server.guard.auth import new_key
from tests.utils.redis_server import RedisServer
from tests.utils.service import alma_service

pytestmark = pytest.mark.integration

EXCLUDED = ("/threads/{thread_id}/stream/events", "/threads/{thread_id}/stream")
"""The protocol's event stream and the thread join stream never end on their own; the fuzz,
SSE and join-stream tests cover them."""


GROUPS = {"threads": r"^/threads", "runs": r"^/runs", "rest": r"^/(?!threads|runs)"}
"""The document's operations in three parts, each driven against its own server, so that
the suite's workers share the minutes this takes (about five for the whole document)."""


@pytest.mark.parametrize("part", GROUPS)
def test_no_operation_answers_5xx_or_breaks_its_schema(redis: RedisServer, part: str) -> None:
    paths_matching = GROUPS[part]
    key, entry = new_key("alice")
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    env = {"ALMA_API_KEYS": entry, "ALMA_LIMIT_RUNS": "100000"}
    with alma_service(redis.url, prefix=f"openapi-{part}", env=env) as service:
        result = subprocess.run(
            [
                cli,
                "run",
                f"{service.url}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                "40",
                "--header",
                f"Authorization: Bearer {key}",
                "--include-path-regex",
                paths_matching,
                *[option for path in EXCLUDED for option in ("--exclude-path", path)],
                "--no-color",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = "".join(service.process.output)
        keyed = {"authorization": f"Bearer {key}"}
        paths = httpx.get(f"{service.url}/openapi.json", headers=keyed).json()["paths"]
    # Every operation of the part was driven, but the excluded ones.
    operations = sum(
        len(methods)
        for path, methods in paths.items()
        if path not in EXCLUDED and re.match(paths_matching, path)
    )
    assert result.returncode == 0, result.stdout[-4000:]
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested is not None and int(tested.group(1)) == operations, result.stdout[-2000:]
    assert "Traceback" not in log
