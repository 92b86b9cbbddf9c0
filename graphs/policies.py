"""How every model-calling node is retried, timed out and, where it is safe, cached."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import CachePolicy, RetryPolicy, TimeoutPolicy

from nodes.errors import is_transient
from nodes.models import ModelProvider, Role


def model_node_options(
    provider: ModelProvider, role: Role, *, cache_ttl: int | None = None
) -> dict[str, Any]:
    """Keyword arguments for `add_node` of a node that calls `role`'s model.

    Transient provider errors are retried with backoff; a call that stops producing
    tokens for `idle_timeout`, or runs past `run_timeout`, is abandoned and retried.
    Once attempts are exhausted the error propagates to the manager, whose error
    handlers record it in the state (see graphs/manager.py). With `cache_ttl`, nodes
    whose answer is deterministic are cached (see `cache_policy`).
    """
    policy = provider.policy
    options: dict[str, Any] = {
        "retry_policy": RetryPolicy(
            max_attempts=policy.attempts,
            initial_interval=policy.retry_interval,
            jitter=policy.jitter,
            retry_on=is_transient,
        ),
        "timeout": TimeoutPolicy(run_timeout=policy.run_timeout, idle_timeout=policy.idle_timeout),
    }
    cached = cache_policy(provider, role, cache_ttl)
    if cached is not None:
        options["cache_policy"] = cached
    return options


def cache_policy(provider: ModelProvider, role: Role, ttl: int | None) -> CachePolicy[Any] | None:
    """A node cache policy for `role`, if its answers are deterministic; else `None`.

    Deterministic means temperature 0, or the simulated model. The key covers the
    node's whole input and the role's model settings, since messages get fresh ids and
    LangGraph's default key would never match.
    """
    if not ttl:
        return None
    config = provider.role(role)
    if not (provider.is_simulated or config.temperature == 0):
        return None
    fingerprint = f"{role}|{config.model}|{config.temperature}|{config.max_tokens}"
    return CachePolicy(key_func=input_key(fingerprint), ttl=ttl)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return [value.type, value.text, getattr(value, "tool_calls", None) or []]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def input_key(fingerprint: str) -> Callable[[Any], str]:
    """A cache key function over a node's input: message text and roles, not their ids."""

    def key(node_input: Any) -> str:
        payload = json.dumps([fingerprint, _plain(node_input)], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    return key
