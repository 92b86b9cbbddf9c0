"""`alma chat` on a real provider path: ChatOpenAI against the local OpenAI-compatible simulator."""

import subprocess
import sys

import pytest

from tests.integration.conftest import OpenAIEndpoint
from tests.utils.processes import ROOT

pytestmark = pytest.mark.integration


def test_chat_output_has_no_library_chatter_between_the_tokens(
    openai_endpoint: OpenAIEndpoint,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "chat", "--router", "heuristic", "--max-steps",
         "2", "Compare quicksort and mergesort"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "ALMA_PROVIDER": "openai",
            "OPENAI_BASE_URL": openai_endpoint.base_url,
            "OPENAI_API_KEY": "sk-local",
            "ALMA_REDIS_URL": "",
        },
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "## Answer" in result.stdout
    # Four model calls went out (plan, two steps, synthesis); httpx logged none of them.
    output = result.stdout + result.stderr
    assert "HTTP Request" not in output and "[httpx]" not in output, output
    # ALMA's own lines still show: what serves the models, and its warnings.
    assert "model provider: OpenAI-compatible provider at" in result.stderr
    assert "conversation memory: process memory only" in result.stderr
