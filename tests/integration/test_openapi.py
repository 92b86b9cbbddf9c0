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

EXCLUDED = "/threads/{thread_id}/stream/events"
"""The protocol's event stream never ends on its own; the fuzz and SSE tests cover it."""


def test_no_operation_answers_5xx_or_breaks_its_schema(redis: RedisServer) -> None:
    key, entry = new_key("alice")
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    env = {"ALMA_API_KEYS": entry, "ALMA_LIMIT_RUNS": "100000"}
    with alma_service(redis.url, prefix="openapi", env=env) as service:
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
                "--exclude-path",
                EXCLUDED,
                "--no-color",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = "".join(service.process.output)
        keyed = {"authorization": f"Bearer {key}"}
        paths = httpx.get(f"{service.url}/openapi.json", headers=keyed).json()["paths"]
    # Every operation of the document was driven, but the excluded one.
    operations = sum(len(methods) for path, methods in paths.items() if path != EXCLUDED)
    assert result.returncode == 0, result.stdout[-4000:]
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested is not None and int(tested.group(1)) == operations, result.stdout[-2000:]
    assert "Traceback" not in log
