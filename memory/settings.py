"""Where conversations are kept, and for how long."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RedisDsn, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

THIRTY_DAYS = 30 * 24 * 3600


class MemorySettings(BaseSettings):
    """Conversation memory settings, read from `ALMA_*` variables."""

    model_config = SettingsConfigDict(env_prefix="ALMA_", env_file=".env", extra="ignore")

    redis_url: RedisDsn | None = Field(
        default=RedisDsn("redis://127.0.0.1:6379/0"),
        description="Redis (or Valkey) holding threads, run logs, limits and the cache; "
        "empty to keep everything in process memory.",
    )
    redis_cluster: bool = Field(default=False, description="`redis_url` names a Cluster node.")
    redis_cluster_nodes: str = Field(
        default="",
        description="More Cluster nodes to start from, comma-separated `host:port`, so a "
        "process starts while the node in `redis_url` is down (password and TLS as in "
        "`redis_url`).",
    )
    redis_required: bool = Field(
        default=False,
        description="Refuse to start without Redis instead of falling back to memory.",
    )
    redis_max_connections: int = Field(
        default=256,
        ge=4,
        le=10_000,
        description="Most Redis connections per process; further commands wait for one.",
    )
    redis_pool_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a command waits for a free Redis connection before failing.",
    )
    redis_prefix: str = Field(default="alma", min_length=1, description="Prefix of every key.")
    thread_ttl: int = Field(
        default=THIRTY_DAYS,
        ge=0,
        description="Seconds a conversation is kept after its last write; 0 keeps it forever.",
    )
    thread_ttl_refresh_on_read: bool = Field(
        default=False, description="Reading a conversation also restarts its time-to-live."
    )
    checkpoint_encryption_key: SecretStr | None = Field(
        default=None,
        description="Hex AES key (32, 48 or 64 hex digits) to encrypt conversations at rest.",
    )
    cache_ttl: int = Field(
        default=0,
        ge=0,
        description="Seconds to cache answers of deterministic model nodes; 0 turns caching off.",
    )

    store_ttl: int = Field(
        default=0,
        ge=0,
        description="Seconds a long-term memory (store) item is kept after its last write; "
        "0 keeps it forever.",
    )
    store_ttl_refresh_on_read: bool = Field(
        default=True, description="Reading a store item also restarts its time-to-live."
    )

    @field_validator("redis_url", "checkpoint_encryption_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("checkpoint_encryption_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            key = bytes.fromhex(value.get_secret_value())
        except ValueError as exc:
            raise ValueError("must be hexadecimal") from exc
        if len(key) not in (16, 24, 32):
            raise ValueError("must be 32, 48 or 64 hex digits (an AES-128/192/256 key)")
        return value

    @property
    def ttl_seconds(self) -> int | None:
        """The thread TTL as the saver takes it: `None` keeps forever."""
        return self.thread_ttl or None
