"""ALMA beside `langgraph dev`: both serving the same graph, on one Redis, for one test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.utils.langgraph_dev import langgraph_dev
from tests.utils.service import alma_service


@dataclass(frozen=True)
class Pair:
    """ALMA's URL and `langgraph dev`'s."""

    alma: str
    dev: str

    def clients(self) -> tuple[LangGraphClient, LangGraphClient]:
        """An SDK client of each, ALMA's first (a client per test: each has its own loop)."""
        return get_client(url=self.alma), get_client(url=self.dev)


@contextmanager
def alma_beside_dev(
    redis_url: str, name: str, env: Mapping[str, str] | None = None
) -> Iterator[Pair]:
    """Start both, each under its own key prefix on `redis_url` (`name`, made unique)."""
    tag = uuid.uuid4().hex[:6]
    with (
        alma_service(redis_url, prefix=f"{name}-{tag}", env=env) as alma,
        langgraph_dev(redis_url, prefix=f"{name}dev-{tag}", env=env) as dev,
    ):
        yield Pair(alma=alma.url, dev=dev)
