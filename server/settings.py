"""The service's settings: one schema over models, memory and the server itself."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from memory.settings import MemorySettings
from nodes.models import ModelSettings

_KEY_HASH = re.compile(r"^(?P<owner>[A-Za-z0-9_.@-]{1,64}):sha256:(?P<digest>[0-9a-f]{64})$")


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class Settings(ModelSettings, MemorySettings):
    """Every `ALMA_*` setting (and the providers' own variables), validated at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="ALMA_", env_file=".env", extra="ignore", populate_by_name=True
    )

    mode: Literal["development", "production"] = Field(
        default="development",
        description="`production` requires API keys and Redis; `development` may run "
        "without keys (every client is the owner `local`).",
    )
    api_keys: CommaList = Field(
        default_factory=list,
        description="Comma-separated `owner:sha256:<hex digest of the key>` entries "
        "(`alma keygen OWNER` makes one); keys themselves are never configured.",
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        description="Origins (scheme://host:port) other than the service's own that "
        "browsers may call it from, over HTTP and WebSocket.",
    )

    host: str = Field(default="127.0.0.1", description="Address `alma serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `alma serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Uvicorn worker processes.")
    event_log_maxlen: int = Field(
        default=10_000, ge=100, description="Most events kept per thread for resume."
    )
    event_log_ttl: int = Field(
        default=24 * 3600, ge=60, description="Seconds a thread's event log is kept."
    )
    send_queue_size: int = Field(
        default=2_000,
        ge=16,
        description="Events a connection may have unsent before it is closed as too slow.",
    )
    run_lease_seconds: float = Field(
        default=30.0, gt=1, description="A crashed process frees its threads after this."
    )
    multitask_wait_seconds: float = Field(
        default=300.0, gt=0, description="How long `enqueue` / `interrupt` wait for a thread."
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long running answers may finish."
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Idle seconds before an SSE stream sends a heartbeat."
    )

    # -- rate limits (per owner; per client address without keys) ---------------------
    limit_connections: int = Field(
        default=20, ge=1, description="WebSocket and SSE connections open at once."
    )
    limit_runs: int = Field(default=30, ge=1, description="New runs per window.")
    limit_tokens: int = Field(
        default=200_000, ge=1, description="Model tokens (prompt + completion) per window."
    )
    limit_window_seconds: int = Field(
        default=60, ge=1, le=86_400, description="The window of the run and token limits."
    )

    # -- request limits --------------------------------------------------------------
    max_body_bytes: int = Field(
        default=1_048_576, ge=1_024, description="Largest HTTP request body."
    )
    max_ws_message_bytes: int = Field(
        default=1_048_576, ge=1_024, description="Largest WebSocket message (close 1009)."
    )
    max_message_chars: int = Field(
        default=32_000, ge=1, description="Longest text of one input message."
    )
    max_messages: int = Field(default=100, ge=1, description="Most input messages per run.")
    log_content: bool = Field(
        default=False, description="Log prompts and answers (debugging only)."
    )

    # -- LangSmith (its own variables) --------------------------------------------------
    langsmith_tracing: bool = Field(
        default=False,
        validation_alias=AliasChoices("LANGSMITH_TRACING", "ALMA_LANGSMITH_TRACING"),
        description="Send traces of runs to LangSmith.",
    )
    langsmith_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LANGSMITH_API_KEY", "ALMA_LANGSMITH_API_KEY"),
        description="LangSmith API key.",
    )
    langsmith_project: str = Field(
        default="alma",
        validation_alias=AliasChoices("LANGSMITH_PROJECT", "ALMA_LANGSMITH_PROJECT"),
        description="LangSmith project that receives the traces.",
    )
    langsmith_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LANGSMITH_ENDPOINT", "ALMA_LANGSMITH_ENDPOINT"),
        description="LangSmith API URL (self-hosted LangSmith).",
    )

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("api_keys")
    @classmethod
    def _key_hashes(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not _KEY_HASH.match(entry):
                raise ValueError(
                    f"{entry[:12]!r}… is not `owner:sha256:<64 hex digits>`; "
                    "make one with `alma keygen OWNER`"
                )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(f"{origin!r} is not an origin like https://example.com")
        return value

    @model_validator(mode="after")
    def _production_is_guarded(self) -> Settings:
        if self.mode == "production":
            if not self.api_keys:
                raise ValueError("ALMA_MODE=production needs ALMA_API_KEYS")
            if self.redis_url is None:
                raise ValueError("ALMA_MODE=production needs ALMA_REDIS_URL")
        return self

    def key_owners(self) -> dict[str, str]:
        """Owner by the hex SHA-256 digest of their key."""
        owners = {}
        for entry in self.api_keys:
            match = _KEY_HASH.match(entry)
            assert match is not None  # validated above
            owners[match["digest"]] = match["owner"]
        return owners


def env_names(settings_type: type[Settings] = Settings) -> dict[str, str]:
    """The environment variable of every setting, by field name."""
    names = {}
    prefix = settings_type.model_config.get("env_prefix", "")
    for name, field in settings_type.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[name] = str(alias.choices[0])
        elif isinstance(alias, str):
            names[name] = alias
        else:
            names[name] = f"{prefix}{name}".upper()
    return names


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad setting, naming its variable and what is expected."""
    names = env_names()
    lines = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        field = location[0] if location else ""
        variable = names.get(field, field.upper() or "configuration")
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        shown = "" if not location or field in SECRET_FIELDS else f" (got {str(value)[:60]!r})"
        lines.append(f"invalid setting {variable}: {message}{shown}")
    return lines


SECRET_FIELDS = frozenset(
    {"openai_api_key", "langsmith_api_key", "checkpoint_encryption_key", "api_keys"}
)
"""Settings shown masked by `alma config` and never echoed in errors."""


def show_settings(settings: Settings) -> str:
    """Every setting as `VARIABLE=value`, secrets masked, in declaration order."""
    lines = []
    for name, variable in env_names(type(settings)).items():
        value = getattr(settings, name)
        if name in SECRET_FIELDS and value:
            shown = (
                ", ".join(f"{entry.split(':', 1)[0]}:sha256:…" for entry in value)
                if isinstance(value, list)
                else "********"
            )
        elif isinstance(value, list):
            shown = ",".join(str(item) for item in value)
        elif value is None:
            shown = ""
        else:
            shown = str(value)
        lines.append(f"{variable}={shown}")
    return "\n".join(lines)
