"""The service's settings: one schema over models, memory and the server itself."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from langgraph.types import Durability
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from memory.settings import MemorySettings
from nodes.models import ModelSettings
from server.observability.logs import LogSetup
from server.observability.pricing import DEFAULT_PRICES, ModelPrice

_KEY_HASH = re.compile(r"^(?P<owner>[A-Za-z0-9_.@-]{1,64}):sha256:(?P<digest>[0-9a-f]{64})$")


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]
OPERATOR_ENDPOINTS = frozenset({"metrics", "stats", "docs"})
"""Endpoints for operators, keyed in production unless `open_endpoints` names them."""


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
    allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Without API keys: host names (the `Host` header) the service answers "
        "besides `localhost`, `127.0.0.1` and `[::1]`, so that a web page cannot reach it "
        "by rebinding a name of its own to this machine. Bound to an address other than "
        "loopback with this empty, any host name is answered.",
    )
    open_endpoints: CommaList = Field(
        default_factory=list,
        description="When API keys are required: which operational endpoints still answer "
        "without one — any of `metrics`, `stats`, `docs` (`/docs` and `/openapi.json`). "
        "None by default: a scraper sends a key of its own (`alma keygen prometheus`). "
        "Without keys (development) every one is open.",
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        description="Origins (scheme://host:port) other than the service's own that "
        "browsers may call it from, over HTTP and WebSocket (`https://smith.langchain.com` "
        "for LangGraph Studio).",
    )
    cors_allow_private_network: bool = Field(
        default=False,
        description="Answer browsers' Private Network Access preflights from the origins in "
        "ALMA_CORS_ORIGINS, so a page served over https (LangGraph Studio at "
        "https://smith.langchain.com) may call ALMA on localhost or a private address.",
    )
    webhook_allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Hosts a run's `webhook` may call when it ends: names "
        "(`hooks.example.com`), patterns (`*.example.com`) or addresses. None by default: "
        "webhooks are refused. Loopback, link-local and other special addresses are called "
        "only when listed as the address itself (`127.0.0.1`); see docs/security.md.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let allowed webhook hosts resolve to private-network addresses "
        "(10/8, 172.16/12, 192.168/16, fc00::/7); off, they must resolve to public ones.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Most seconds one webhook call may take."
    )
    webhook_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description="Most calls of a webhook that fails (no answer, a 5xx or 429 answer).",
    )
    webhook_backoff_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds before a webhook's second call; each later wait doubles.",
    )

    host: str = Field(default="127.0.0.1", description="Address `alma serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `alma serve` listens on.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Uvicorn worker processes; more than one needs Redis (they share it).",
    )
    forwarded_allow_ips: CommaList = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Comma-separated addresses (or networks) of load balancers whose "
        "`X-Forwarded-For` / `X-Forwarded-Proto` are believed, so limits count per real "
        "client; `*` believes any sender (only when nothing else can reach ALMA).",
    )
    event_log_maxlen: int = Field(
        default=10_000,
        ge=100,
        description=(
            "Most stream entries kept per thread for resume; each entry is a batch of up "
            "to 256 events, so at least this many events are kept."
        ),
    )
    event_flush_interval: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Least seconds between two writes of a run's events to its log: tokens that "
            "stream in between are written, then sent, together. The run's start, the "
            "answer's first token and the run's end go at once."
        ),
    )
    event_writes_per_second: float = Field(
        default=400,
        ge=0,
        description=(
            "Most writes of runs' events to their logs a second, over all the runs a "
            "process streams at once: with many runs, each run's writes are spaced "
            "further than ALMA_EVENT_FLUSH_INTERVAL and carry more events each. 0: no cap."
        ),
    )
    event_log_ttl: int = Field(
        default=24 * 3600, ge=60, description="Seconds a thread's event log is kept."
    )
    send_queue_size: int = Field(
        default=2_000,
        ge=16,
        description="Events a connection may have unsent before it is closed as too slow.",
    )
    max_subscriptions: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="Subscriptions one WebSocket connection may hold at once.",
    )
    run_lease_seconds: float = Field(
        default=30.0, gt=1, description="A crashed process frees its threads after this."
    )
    durability: Durability = Field(
        default="exit",
        description=(
            "When a run's steps are saved: `exit` once, as it ends (completes, fails, is "
            "cancelled or interrupted); `async` or `sync` after every step. With `exit` a "
            "process that dies mid-run loses that run's steps: the thread stays as it was "
            "before the run. LangGraph API runs save every step unless they ask otherwise."
        ),
    )
    review_plan: bool = Field(
        default=False,
        description=(
            "Whether analytical runs stop for the user to review the plan unless a run says "
            "otherwise (its `review_plan` option)."
        ),
    )
    remember_users: bool = Field(
        default=True,
        description=(
            "Whether runs keep and use what users say about themselves across threads unless "
            "a run says otherwise (its `memory` option)."
        ),
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
    ws_ping_interval: float = Field(
        default=20.0, gt=0, description="Seconds between the server's pings on a WebSocket."
    )
    ws_ping_timeout: float = Field(
        default=20.0,
        gt=0,
        description="Seconds a WebSocket client has to answer a ping before it is closed.",
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description=(
            "The server's event loop. `asyncio` (the standard library's) keeps accepting "
            "connections when hundreds of runs saturate the process; `uvloop` spends about "
            "7 % less CPU a run at light load, but under saturation left hundreds of "
            "connections unaccepted for seconds."
        ),
    )
    ws_compression: bool = Field(
        default=False,
        description=(
            "Compress WebSocket messages (permessage-deflate) when the client offers it. "
            "Off by default: a token event is a few hundred bytes, and deflating every "
            "one costs the server more CPU than it saves on a local or fast network."
        ),
    )
    http_keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        description=(
            "Seconds an idle HTTP connection is kept open for the client's next request. "
            "Longer than clients keep theirs (httpx, under the Python SDK: 5 s), so that a "
            "client never sends a request on a connection the server is closing."
        ),
    )

    # -- rate limits (per owner; per client address without keys) ---------------------
    limit_connections: int = Field(
        default=20, ge=1, description="WebSocket and SSE connections open at once."
    )
    limit_runs: int = Field(default=30, ge=1, description="New runs per window.")
    limit_writes: int = Field(
        default=120,
        ge=1,
        description="Writes that are not runs per window: threads created or copied, "
        "state and metadata updates.",
    )
    max_threads_per_owner: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Threads one owner may hold; creating or copying one more is refused.",
    )
    max_crons_per_owner: int = Field(
        default=100,
        ge=1,
        le=10000,
        description="Crons one owner may hold; creating one more is refused.",
    )
    cron_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="The longest a process's cron scheduler waits before looking for due "
        "crons; a cron created or changed in another process is seen within it.",
    )
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

    # -- logs --------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="Console lines: `json`, readable `console`, or `auto` (console on a "
        "terminal, JSON otherwise).",
    )
    log_file: Path | None = Field(
        default=None, description="Also write JSON lines to this file, rotated."
    )
    log_error_file: Path | None = Field(
        default=None,
        description="Errors again in this file (default: the log file's name + `.errors`).",
    )
    log_rotate_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=0,
        description="Rotate log files at this size; 0 rotates by time (ALMA_LOG_ROTATE_WHEN).",
    )
    log_rotate_when: Literal["S", "M", "H", "D", "midnight", "W0", "W1", "W2", "W3", "W4",
                             "W5", "W6"] = Field(
        default="midnight", description="When to rotate, if not by size."
    )  # fmt: skip
    log_backups: int = Field(default=7, ge=0, description="Rotated log files kept.")

    # -- metrics and cost --------------------------------------------------------------
    metrics_sample_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often process resources and Redis round trip are sampled.",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million prompt / completion tokens by model, as JSON "
        '(`{"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}`); replaces the built-in '
        "table. Unknown models cost 0 and are logged once.",
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

    @field_validator("open_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - OPERATOR_ENDPOINTS)
        if unknown:
            raise ValueError(
                f"unknown endpoint(s) {', '.join(unknown)}; any of metrics, stats, docs"
            )
        return value

    @field_validator(
        "api_keys",
        "cors_origins",
        "forwarded_allow_ips",
        "open_endpoints",
        "allowed_hosts",
        "webhook_allowed_hosts",
        mode="before",
    )
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

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an address, a network or `*`") from None
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

    def log_setup(self, *, split_streams: bool = True) -> LogSetup:
        """Where and how to log, from these settings."""
        return LogSetup(
            level=self.log_level,
            format=self.log_format,
            file=self.log_file,
            error_file=self.log_error_file,
            rotate_bytes=self.log_rotate_bytes,
            rotate_when=self.log_rotate_when,
            backups=self.log_backups,
            split_streams=split_streams,
        )

    def key_owners(self) -> dict[str, str]:
        """Owner by the hex SHA-256 digest of their key."""
        owners = {}
        for entry in self.api_keys:
            match = _KEY_HASH.match(entry)
            assert match is not None  # validated above
            owners[match["digest"]] = match["owner"]
        return owners
