from pathlib import Path
from typing import cast

import pytest
from langchain_openai import ChatOpenAI
from pydantic import ValidationError

from nodes.models import ModelProvider, ModelSettings
from nodes.simulated import SimulatedChatModel


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ALMA_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_without_provider_settings_the_simulated_model_serves() -> None:
    provider = ModelProvider.from_settings(ModelSettings())
    assert provider.is_simulated
    assert "SIMULATED" in provider.description
    assert isinstance(provider.chat_model("creative"), SimulatedChatModel)


def test_a_base_url_selects_the_openai_compatible_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8011/v1")
    monkeypatch.setenv("ALMA_CREATIVE_MODEL", "llama-3.1-8b")
    monkeypatch.setenv("ALMA_CREATIVE_TEMPERATURE", "1.1")
    monkeypatch.setenv("ALMA_MODEL_RUN_TIMEOUT", "42")
    provider = ModelProvider.from_settings(ModelSettings())
    model = provider.chat_model("creative")
    assert isinstance(model, ChatOpenAI)
    assert not provider.is_simulated
    assert model.model_name == "llama-3.1-8b"
    assert model.temperature == 1.1
    assert model.openai_api_base == "http://127.0.0.1:8011/v1"
    # Usage is requested on streams; retries are left to the graph's RetryPolicy.
    assert model.stream_usage is True
    assert model.max_retries == 0
    assert model.request_timeout == 42
    assert "127.0.0.1:8011" in provider.description


def test_each_role_gets_its_own_model_and_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ALMA_ROUTER_MODEL", "small")
    monkeypatch.setenv("ALMA_ANALYTICAL_MODEL", "large")
    monkeypatch.setenv("ALMA_ANALYTICAL_CONTEXT_TOKENS", "16000")
    monkeypatch.setenv("ALMA_ANALYTICAL_MAX_TOKENS", "2000")
    provider = ModelProvider.from_settings(ModelSettings())
    assert provider.role("router").model == "small"
    assert provider.role("analytical").model == "large"
    assert provider.role("analytical").prompt_budget == 14_000


def test_forcing_the_simulator_ignores_a_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ALMA_PROVIDER", "simulated")
    assert ModelProvider.from_settings(ModelSettings()).is_simulated


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALMA_CREATIVE_TEMPERATURE", "3"),
        ("ALMA_MODEL_ATTEMPTS", "zero"),
        ("OPENAI_BASE_URL", "not a url"),
        ("ALMA_PROVIDER", "anthropic"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        ModelSettings()
    [error] = caught.value.errors()
    assert cast(str, error["loc"][0]).upper() in name
