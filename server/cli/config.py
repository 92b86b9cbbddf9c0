"""The configuration in words: `alma config`, the example `.env`, and what a bad setting says.

Read from the settings' own schema, so every setting is shown, masked where secret,
and documented by the description it was declared with.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import AliasChoices, BaseModel, ValidationError

from server.settings import Settings


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
        elif value is None:
            shown = ""
        else:
            shown = _example_value(value)
        if name == "provider" and value == "auto":
            # A comment, so the output still loads as a .env file.
            shown += f"  # resolved: {_resolution(settings)}"
        lines.append(f"{variable}={shown}")
    return "\n".join(lines)


def _resolution(settings: Settings) -> str:
    """What `auto` resolved to, and which variables decided it."""
    names = env_names(type(settings))
    key, url = names["openai_api_key"], names["openai_base_url"]
    given = [
        name
        for name, value in ((key, settings.openai_api_key), (url, settings.openai_base_url))
        if value is not None
    ]
    why = f"{' and '.join(given)} set" if given else f"neither {key} nor {url} set"
    return f"{settings.resolved_provider} ({why})"


_SECTIONS = {
    "redis_url": "Conversation memory (Redis or Valkey)",
    "provider": "Model provider and models",
    "mode": "Who may call, and from where",
    "host": "The service (alma serve)",
    "limit_connections": "Rate limits, per API key (per client address without keys)",
    "max_body_bytes": "Request limits",
    "log_level": "Logs",
    "metrics_sample_seconds": "Metrics and cost",
    "langsmith_tracing": "LangSmith",
}


def _example_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(
            {key: item.model_dump() if isinstance(item, BaseModel) else item
             for key, item in value.items()},
            separators=(",", ":"),
        )  # fmt: skip
    if isinstance(value, tuple):
        return json.dumps(list(value), separators=(",", ":"))
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def example_env() -> str:
    """`.env.example`: every setting with its default and meaning, from the schema."""
    lines = [
        "# ALMA settings: every one, with its default. Copy to .env and change what you need;",
        "# the environment wins over .env. `alma config` prints the effective values.",
    ]
    defaults = Settings.model_construct()
    for name, variable in env_names().items():
        if name in _SECTIONS:
            lines += ["", f"# == {_SECTIONS[name]} =="]
        description = Settings.model_fields[name].description or ""
        lines.append(f"# {' '.join(description.split())}")
        value = getattr(defaults, name)
        if value is None or (name in SECRET_FIELDS and not value):
            lines.append(f"# {variable}=")
        else:
            lines.append(f"{variable}={_example_value(value)}")
    return "\n".join(lines) + "\n"
