"""Structured logs: structlog renders every stdlib record, uvicorn's included.

Code logs through `logging` as usual; one formatter turns each record into JSON lines
(production) or readable colour (a terminal), adding the ids bound for the current
request or run (`bind`) and the LangGraph node the line was written from.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
from concurrent_log_handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler
from langchain_core.runnables.config import var_child_runnable_config

LogFormat = Literal["auto", "json", "console"]

_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@dataclass(frozen=True)
class LogSetup:
    """Where log lines go and how they look."""

    level: str = "info"
    libraries_level: str | None = None
    """Lowest level logged for loggers other than ALMA's own (`alma.*`); default: `level`."""
    format: LogFormat = "auto"
    file: Path | None = None
    """JSON lines, rotated, in this file (besides the console)."""
    error_file: Path | None = None
    """Errors again, in their own rotated file (default: `<file>.errors` beside `file`)."""
    rotate_bytes: int = 10 * 1024 * 1024
    """Rotate when the file passes this size; 0 rotates by time instead."""
    rotate_when: str = "midnight"
    """With `rotate_bytes` 0: `S`, `M`, `H`, `D`, `midnight` or `W0`–`W6`."""
    backups: int = 7
    """Rotated files kept; older ones are deleted."""
    split_streams: bool = True
    """Errors on stderr and the rest on stdout; otherwise everything on stderr."""


def _node(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # LangChain keeps the running step's config in a context variable; a line written
    # inside a graph node carries that node's name without the node passing it.
    config = var_child_runnable_config.get()
    if config and "node" not in event:
        node = (config.get("metadata") or {}).get("langgraph_node")
        if node:
            event["node"] = node
    return event


def _error_code(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    exc_info = event.get("exc_info")
    if isinstance(exc_info, tuple):
        exc_info = exc_info[1]
    if "error_code" not in event and isinstance(exc_info, BaseException):
        code = getattr(exc_info, "code", None)
        if isinstance(code, str):
            event["error_code"] = code
    return event


def _drop_color_message(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn repeats some messages, ANSI-coloured, in an extra `color_message` for its
    # own formatter; here the message is already the event.
    event.pop("color_message", None)
    return event


_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_color_message,
    _node,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _formatter(renderer: Any, *, json: bool) -> logging.Formatter:
    tail: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        # Exceptions become data (the whole chain, `raise … from …` included), without
        # the frames' local variables: they may hold prompts and keys.
        tail += [_error_code, _TRACEBACKS]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED, processors=[*tail, renderer]
    )


def _json() -> logging.Formatter:
    return _formatter(structlog.processors.JSONRenderer(sort_keys=False), json=True)


def _file_handler(path: Path, setup: LogSetup) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    # These handlers lock around rollover, so several uvicorn workers may share a file.
    if setup.rotate_bytes > 0:
        return ConcurrentRotatingFileHandler(
            path, maxBytes=setup.rotate_bytes, backupCount=setup.backups, encoding="utf-8"
        )
    return ConcurrentTimedRotatingFileHandler(
        path, when=setup.rotate_when, backupCount=setup.backups, encoding="utf-8"
    )


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure_logging(setup: LogSetup) -> None:
    """Route every logger through structlog's formatter; safe to call again."""
    use_json = setup.format == "json" or (setup.format == "auto" and not sys.stderr.isatty())
    console = (
        _json()
        if use_json
        else _formatter(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()), json=False)
    )
    handlers: list[logging.Handler] = []
    errors = logging.StreamHandler(sys.stderr)
    if setup.split_streams:
        errors.setLevel(logging.ERROR)
        rest = logging.StreamHandler(sys.stdout)
        rest.addFilter(_Below(logging.ERROR))
        rest.setFormatter(console)
        handlers.append(rest)
    errors.setFormatter(console)
    handlers.append(errors)
    if setup.file is not None:
        main = _file_handler(setup.file, setup)
        main.setFormatter(_json())
        failures = _file_handler(
            setup.error_file or setup.file.with_name(setup.file.name + ".errors"), setup
        )
        failures.setLevel(logging.ERROR)
        failures.setFormatter(_json())
        handlers += [main, failures]

    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel((setup.libraries_level or setup.level).upper())
    logging.getLogger("alma").setLevel(setup.level.upper())
    for name in _UVICORN:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        # The app writes its own access lines, with request ids and durations.
        logger.propagate = name != "uvicorn.access"

    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Add `ids` (request, thread, run, owner…) to every log line written inside."""
    present = {key: value for key, value in ids.items() if value is not None}
    with structlog.contextvars.bound_contextvars(**present):
        yield


def bind(**ids: Any) -> None:
    """Add `ids` to every later log line of the current task."""
    structlog.contextvars.bind_contextvars(
        **{key: value for key, value in ids.items() if value is not None}
    )
