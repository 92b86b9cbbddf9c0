"""The service's settings: one schema over models, memory and the server itself."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from memory.settings import MemorySettings
from nodes.models import ModelSettings


class Settings(ModelSettings, MemorySettings):
    """Every `ALMA_*` setting (and the providers' own variables), validated at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="ALMA_", env_file=".env", extra="ignore", populate_by_name=True
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
