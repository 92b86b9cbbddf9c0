"""The model factory: one chat model per role, from an OpenAI-compatible provider or simulated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import AliasChoices, Field, HttpUrl, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from nodes.context import TokenCounter
from nodes.simulated import FAULTS, Fault, SimulatedChatModel

Role = Literal["router", "creative", "analytical"]
ROLES: tuple[Role, ...] = ("router", "creative", "analytical")


class ModelSettings(BaseSettings):
    """Which provider serves each role, and how calls to it are bounded.

    Read from `ALMA_*` variables (and the providers' own `OPENAI_API_KEY` /
    `OPENAI_BASE_URL`). With neither a key nor a base URL the simulated model serves.
    """

    model_config = SettingsConfigDict(
        env_prefix="ALMA_", env_file=".env", extra="ignore", populate_by_name=True
    )

    provider: Literal["auto", "openai", "simulated"] = Field(
        default="auto",
        description="`auto` uses an OpenAI-compatible endpoint when a key or base URL is set.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "ALMA_OPENAI_API_KEY"),
        description="API key of the OpenAI-compatible provider.",
    )
    openai_base_url: HttpUrl | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "ALMA_OPENAI_BASE_URL"),
        description="Base URL of any OpenAI-compatible server (vLLM, Ollama, llama.cpp).",
    )

    router_model: str = Field(default="gpt-4o-mini", description="Model of the router role.")
    creative_model: str = Field(default="gpt-4o", description="Model of the creative role.")
    analytical_model: str = Field(default="gpt-4o", description="Model of the analytical role.")
    router_temperature: float = Field(default=0.0, ge=0, le=2, description="Router temperature.")
    creative_temperature: float = Field(
        default=0.9, ge=0, le=2, description="Creative temperature."
    )
    analytical_temperature: float = Field(
        default=0.2, ge=0, le=2, description="Analytical temperature."
    )
    router_max_tokens: int = Field(default=256, ge=16, description="Most tokens a router answer.")
    creative_max_tokens: int = Field(
        default=1024, ge=16, description="Most tokens a creative answer."
    )
    analytical_max_tokens: int = Field(
        default=1024, ge=16, description="Most tokens an analytical answer."
    )
    router_context_tokens: int = Field(
        default=8_000, ge=256, description="Context window the router may fill."
    )
    creative_context_tokens: int = Field(
        default=32_000, ge=256, description="Context window the creative role may fill."
    )
    analytical_context_tokens: int = Field(
        default=32_000, ge=256, description="Context window the analytical role may fill."
    )

    model_attempts: int = Field(default=3, ge=1, le=10, description="Attempts per model call.")
    model_retry_interval: float = Field(
        default=0.5, gt=0, description="Seconds before the first retry; doubles after."
    )
    model_retry_jitter: bool = Field(
        default=True, description="Add up to a second of random delay to each retry."
    )
    model_max_connections: int = Field(
        default=100, ge=1, description="HTTP connections to the provider, shared by roles."
    )
    model_idle_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a model call may go without a token."
    )
    model_run_timeout: float = Field(
        default=300.0, gt=0, description="Seconds a single model call may take in all."
    )

    simulated_ttft: float = Field(
        default=0.15, ge=0, description="Simulated seconds to first token."
    )  # noqa: E501
    simulated_tokens_per_second: float = Field(
        default=80.0, ge=0, description="Simulated pace in tokens per second; 0 = no pacing."
    )
    simulated_fault_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of simulated calls that fail (timeout, 429, 500).",
    )
    simulated_faults: tuple[Fault, ...] = Field(
        default=FAULTS,
        description='Which faults the simulated rate draws from, as JSON (`["server_error"]`).',
    )
    simulated_seed: int | None = Field(
        default=None, description="Makes simulated faults reproducible."
    )

    @property
    def resolved_provider(self) -> Literal["openai", "simulated"]:
        """The provider that serves: `auto` resolved by whether a key or base URL is set."""
        if self.provider != "auto":
            return self.provider
        if self.openai_api_key is not None or self.openai_base_url is not None:
            return "openai"
        return "simulated"

    @property
    def uses_provider(self) -> bool:
        """Whether calls go to an OpenAI-compatible endpoint rather than the simulator."""
        return self.resolved_provider == "openai"


@dataclass(frozen=True, slots=True)
class RoleConfig:
    """How one role calls its model."""

    model: str
    temperature: float
    max_tokens: int
    """Most tokens the model may answer with."""
    context_tokens: int
    """The model's context window this role may fill, answer included."""

    @property
    def prompt_budget(self) -> int:
        """Tokens left for the prompt once the answer's room is set aside."""
        return self.context_tokens - self.max_tokens


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """Retry and timeout bounds shared by every model-calling node."""

    attempts: int = 3
    retry_interval: float = 0.5
    jitter: bool = True
    """Spread retries by up to a second, so clients failing together do not retry together."""
    idle_timeout: float = 30.0
    run_timeout: float = 300.0


class ModelProvider:
    """Hands each role its chat model, its budget and the counter that measures it."""

    def __init__(
        self,
        *,
        models: Mapping[Role, BaseChatModel],
        roles: Mapping[Role, RoleConfig],
        policy: CallPolicy,
        description: str,
        simulated: bool,
        counter: TokenCounter | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        missing = set(ROLES) - set(models) | set(ROLES) - set(roles)
        if missing:
            raise ValueError(f"no model configured for role(s): {', '.join(sorted(missing))}")
        self._models = dict(models)
        self._roles = dict(roles)
        self.policy = policy
        self.description = description
        self.is_simulated = simulated
        self.counter = counter or TokenCounter()
        self._http_client = http_client

    async def aclose(self) -> None:
        """Close the provider's HTTP connections, if it has any."""
        if self._http_client is not None:
            await self._http_client.aclose()

    def chat_model(self, role: Role) -> BaseChatModel:
        """The chat model that serves `role`."""
        return self._models[role]

    def role(self, role: Role) -> RoleConfig:
        """How `role` calls its model."""
        return self._roles[role]

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> ModelProvider:
        """Build the provider the settings describe: OpenAI-compatible or simulated."""
        roles: dict[Role, RoleConfig] = {
            role: RoleConfig(
                model=getattr(settings, f"{role}_model"),
                temperature=getattr(settings, f"{role}_temperature"),
                max_tokens=getattr(settings, f"{role}_max_tokens"),
                context_tokens=getattr(settings, f"{role}_context_tokens"),
            )
            for role in ROLES
        }
        policy = CallPolicy(
            attempts=settings.model_attempts,
            retry_interval=settings.model_retry_interval,
            jitter=settings.model_retry_jitter,
            idle_timeout=settings.model_idle_timeout,
            run_timeout=settings.model_run_timeout,
        )
        counter = TokenCounter()
        if not settings.uses_provider:
            return cls.simulated(
                ttft=settings.simulated_ttft,
                tokens_per_second=settings.simulated_tokens_per_second,
                fault_rate=settings.simulated_fault_rate,
                faults=settings.simulated_faults,
                seed=settings.simulated_seed,
                roles=roles,
                policy=policy,
                counter=counter,
            )
        base_url = str(settings.openai_base_url) if settings.openai_base_url else None
        models, http_client = _openai_models(settings, roles, policy, base_url)
        where = base_url or "https://api.openai.com/v1"
        names = ", ".join(f"{role}={config.model}" for role, config in roles.items())
        return cls(
            models=models,
            roles=roles,
            policy=policy,
            description=f"OpenAI-compatible provider at {where} ({names})",
            simulated=False,
            counter=counter,
            http_client=http_client,
        )

    @classmethod
    def simulated(
        cls,
        *,
        ttft: float = 0.0,
        tokens_per_second: float = 0.0,
        fault_rate: float = 0.0,
        faults: tuple[Fault, ...] = FAULTS,
        seed: int | None = None,
        roles: Mapping[Role, RoleConfig] | None = None,
        policy: CallPolicy | None = None,
        counter: TokenCounter | None = None,
    ) -> ModelProvider:
        """A provider whose every role is served by the simulated model."""
        counter = counter or TokenCounter()
        models: dict[Role, BaseChatModel] = {
            role: SimulatedChatModel(
                model_name=f"alma-simulated-{role}",
                ttft=ttft,
                tokens_per_second=tokens_per_second,
                fault_rate=fault_rate,
                faults=faults,
                seed=seed,
                counter=counter,
            )
            for role in ROLES
        }
        return cls(
            models=models,
            roles=roles
            or {role: RoleConfig("alma-simulated", 0.0, 1024, 32_000) for role in ROLES},  # noqa: E501
            policy=policy or CallPolicy(),
            description=(
                "SIMULATED model (no provider configured): answers are generated locally "
                "and are not real model output"
            ),
            simulated=True,
            counter=counter,
        )


def _openai_models(
    settings: ModelSettings,
    roles: dict[Role, RoleConfig],
    policy: CallPolicy,
    base_url: str | None,
) -> tuple[dict[Role, BaseChatModel], httpx.AsyncClient]:
    """One ChatOpenAI per role, sharing one connection pool (returned, to be closed)."""
    # Local OpenAI-compatible servers often need no key, but the client insists on one.
    api_key = settings.openai_api_key or SecretStr("not-needed")
    # One connection pool for every role, owned by this provider and closed with it:
    # langchain-openai's default client is cached per process and bound to the event
    # loop that first used it.
    http_client = httpx.AsyncClient(
        timeout=httpx.Timeout(policy.run_timeout, connect=10.0),
        limits=httpx.Limits(
            max_connections=settings.model_max_connections,
            max_keepalive_connections=settings.model_max_connections,
        ),
    )
    models: dict[Role, BaseChatModel] = {
        role: ChatOpenAI(
            model=config.model,
            temperature=config.temperature,
            max_completion_tokens=config.max_tokens,
            api_key=api_key,
            base_url=base_url,
            # Usage on streamed answers must be asked for explicitly.
            stream_usage=True,
            # Retries belong to the graph's RetryPolicy, so each one is visible there.
            max_retries=0,
            timeout=policy.run_timeout,
            http_async_client=http_client,
        )
        for role, config in roles.items()
    }
    return models, http_client
