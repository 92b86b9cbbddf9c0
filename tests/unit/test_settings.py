"""Configuration: every setting documented, bad values named, secrets never shown."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from server.cli.config import env_names, example_env, show_settings
from server.guard.auth import KeyRing, new_key
from server.settings import Settings
from tests.utils.processes import ROOT


def alma(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Run in an empty directory, so no .env is read.
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert listed == set(env_names().values())
    # The file is what `alma config --example` prints: regenerate it when settings change.
    assert text == example_env()


def test_env_example_loads_as_exactly_the_defaults(tmp_path: Path) -> None:
    with_file, without = tmp_path / "with", tmp_path / "without"
    with_file.mkdir()
    without.mkdir()
    (with_file / ".env").write_text(example_env())
    loaded, defaults = alma(with_file, "config"), alma(without, "config")
    assert loaded.returncode == defaults.returncode == 0, loaded.stderr
    assert loaded.stdout == defaults.stdout
    assert "ALMA_MODEL_PRICES=" in loaded.stdout


def test_bad_settings_stop_with_one_line_per_variable(tmp_path: Path) -> None:
    result = alma(
        tmp_path,
        "config",
        ALMA_PORT="eighty",
        ALMA_LIMIT_RUNS="0",
        ALMA_REDIS_URL="not a url",
        ALMA_CORS_ORIGINS="ftp://files.example",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    for variable in ("ALMA_PORT", "ALMA_LIMIT_RUNS", "ALMA_REDIS_URL", "ALMA_CORS_ORIGINS"):
        assert any(f"invalid setting {variable}:" in line for line in lines), variable


def test_production_needs_api_keys(tmp_path: Path) -> None:
    result = alma(tmp_path, "config", ALMA_MODE="production")
    assert result.returncode == 2
    assert "ALMA_MODE=production needs ALMA_API_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_prints_every_setting_with_secrets_masked(tmp_path: Path) -> None:
    key, entry = new_key("alice")
    result = alma(
        tmp_path,
        "config",
        OPENAI_API_KEY="sk-do-not-print-me",
        ALMA_API_KEYS=entry,
        ALMA_CHECKPOINT_ENCRYPTION_KEY="ab" * 16,
    )
    assert result.returncode == 0, result.stderr
    assert "sk-do-not-print-me" not in result.stdout
    assert entry.split(":")[-1] not in result.stdout and "ab" * 16 not in result.stdout
    assert "OPENAI_API_KEY=********" in result.stdout
    assert "ALMA_API_KEYS=alice:sha256:…" in result.stdout
    shown = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert shown == set(env_names().values())


def test_config_shows_what_an_auto_provider_resolved_to(tmp_path: Path) -> None:
    simulated = alma(tmp_path, "config").stdout.splitlines()
    assert (
        "ALMA_PROVIDER=auto  # resolved: simulated (neither OPENAI_API_KEY nor OPENAI_BASE_URL set)"
        in simulated
    )
    real = alma(tmp_path, "config", OPENAI_BASE_URL="http://127.0.0.1:9/v1").stdout.splitlines()
    assert "ALMA_PROVIDER=auto  # resolved: openai (OPENAI_BASE_URL set)" in real
    # A provider named outright needs no explaining.
    forced = Settings(_env_file=None, provider="simulated", openai_api_key=SecretStr("sk-x"))
    assert "ALMA_PROVIDER=simulated" in show_settings(forced).splitlines()


def test_keygen_makes_a_key_whose_digest_is_what_is_configured(tmp_path: Path) -> None:
    result = alma(tmp_path, "keygen", "alice")
    assert result.returncode == 0, result.stderr
    key = re.search(r"it is not stored anywhere\): (\S+)", result.stdout)
    entry = re.search(r"add to ALMA_API_KEYS: (\S+)", result.stdout)
    assert key and entry
    assert entry[1] == f"alice:sha256:{hashlib.sha256(key[1].encode()).hexdigest()}"
    keys = KeyRing(Settings(api_keys=[entry[1]]).key_owners())
    assert keys.identify(key[1], "10.0.0.1").owner == "alice"


def test_a_malformed_key_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="alma keygen"):
        Settings(api_keys=["alice:plaintext-key"])


def test_idle_http_connections_outlive_the_sdks_pool() -> None:
    # LangGraph's Python SDK keeps idle connections for httpx's default: a server that
    # closed them sooner, or at the same moment, could meet a request on a closing one.
    expiry = httpx.Limits().keepalive_expiry
    assert expiry is not None and Settings(_env_file=None).http_keep_alive_seconds > expiry
