"""The `alma` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import httpx
from pydantic import ValidationError
from redis.exceptions import RedisError
from websockets.exceptions import InvalidHandshake, InvalidURI

from graphs.interface import ROUTE_NODES
from memory.connection import redact_url, sync_client
from memory.factory import RedisUnavailableError
from nodes.errors import AlmaError
from nodes.run_context import RunContext
from server.agent_protocol.client import CommandError, http_url, open_thread
from server.cli.config import describe_errors, example_env, show_settings
from server.cli.remembered import HELP as MEMORY_HELP
from server.cli.remembered import LocalMemories, Memories, RemoteMemories, answer_memory_command
from server.cli.rerun import HELP as RERUN_HELP
from server.cli.rerun import Branching, LocalCheckpoints, RemoteCheckpoints, read_turn
from server.cli.review import ask_review
from server.cli.terminal import SHOWN, RunReport, Style, render_engine_run, render_remote_run
from server.guard.auth import LOCAL_OWNER, new_key
from server.guard.refusals import Refused
from server.observability.logs import configure_logging
from server.observability.metrics import MULTIPROC_ENV
from server.services import open_services
from server.settings import Settings

logger = logging.getLogger("alma")


def _add_chat(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = commands.add_parser(
        "chat",
        help="talk to the manager graph in this process (no server needed)",
        description="Send a message to the manager graph and watch it stream. With no "
        "message, read one message per line until end of input, on one thread. "
        f"{RERUN_HELP} · {MEMORY_HELP}.",
    )
    chat.add_argument("message", nargs="?", help="what to ask; omit for an interactive session")
    chat.add_argument("--thread", help="conversation id to continue (default: a new one)")
    chat.add_argument("--route", choices=sorted(ROUTE_NODES), help="force a route")
    chat.add_argument(
        "--router", choices=["heuristic", "llm", "hybrid"], default="hybrid", help="router"
    )
    chat.add_argument("--refine", action="store_true", help="creative: edit the draft once")
    chat.add_argument("--max-steps", type=int, default=4, help="analytical: most plan steps")
    chat.add_argument(
        "--review-plan",
        action="store_true",
        help="analytical: show the plan and ask whether to approve, edit or reject it "
        "before it is analysed",
    )
    chat.add_argument(
        "--url",
        help="a running server to talk to (ws://host:port or http://host:port) "
        "instead of running the graph in this process",
    )
    chat.add_argument(
        "--key",
        default=os.environ.get("ALMA_API_KEY"),
        help="with --url: the API key to send (default: the ALMA_API_KEY environment variable)",
    )
    chat.add_argument(
        "--owner",
        default=LOCAL_OWNER,
        help="in process: whose conversation list the thread joins on the page (default: "
        f"{LOCAL_OWNER}, the owner of every caller when no API keys are configured)",
    )
    chat.add_argument("--verbose", "-v", action="store_true", help="log at debug level")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alma", description="ALMA agent service.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_chat(commands)
    serve = commands.add_parser("serve", help="run the streaming service (HTTP, SSE, WebSocket)")
    serve.add_argument("--host", help="address to listen on (default: ALMA_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: ALMA_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default: ALMA_WORKERS)")
    serve.add_argument("--verbose", "-v", action="store_true", help="log at debug level")
    config = commands.add_parser(
        "config", help="print the effective configuration (secrets masked) and check it"
    )
    config.add_argument(
        "--example",
        action="store_true",
        help="print every setting with its default and meaning instead (.env.example)",
    )
    config.add_argument("--verbose", "-v", action="store_true", help=argparse.SUPPRESS)
    keygen = commands.add_parser(
        "keygen",
        help="make an API key for OWNER: prints the key (give it to the client) and the "
        "line to add to ALMA_API_KEYS",
    )
    commands.add_parser(
        "eval",
        help="measure routing, memory and answers (offline; to LangSmith with a key); "
        "alma eval --help",
        add_help=False,
    )
    commands.add_parser(
        "loadtest",
        help="run a load scenario with Locust and write a report (alma loadtest --help)",
        add_help=False,
    )
    keygen.add_argument("owner", help="who the key belongs to (letters, digits, _.@-)")
    keygen.add_argument("--verbose", "-v", action="store_true", help=argparse.SUPPRESS)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from server.web.nodelay import NoDelayHttpToolsProtocol

    workers = args.workers or settings.workers
    if workers > 1:
        _shared_memory_for_workers(settings)
    if args.verbose:
        os.environ["ALMA_LOG_LEVEL"] = "debug"  # the workers read their settings anew
    if args.host:
        # The app guards a keyless server by the address it is bound to.
        os.environ["ALMA_HOST"] = args.host
    with _metrics_directory(workers):
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=workers,
            # Behind a balancer every peer is the balancer; its X-Forwarded-For names the
            # client that per-address limits must count.
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            # Runs get their grace period inside the app's shutdown; uvicorn waits a little
            # longer so that drain can finish and tell clients how their runs ended.
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
            # The app's logging setup formats uvicorn's lines too; its own access lines
            # are replaced by the app's, which carry request ids and durations.
            log_config=None,
            log_level="debug" if args.verbose else settings.log_level,
            access_log=False,
            # A client that stopped reading (gone without a close) is closed once it
            # leaves a ping unanswered.
            ws_ping_interval=settings.ws_ping_interval,
            ws_ping_timeout=settings.ws_ping_timeout,
            # An oversized WebSocket message closes the connection with 1009.
            ws_max_size=settings.max_ws_message_bytes,
            ws_per_message_deflate=settings.ws_compression,
            loop=settings.event_loop,
            # Every connection without Nagle's algorithm, on one process or several.
            http=NoDelayHttpToolsProtocol,
            # uvicorn's 5 s equals httpx's: a request sent as the server closed the idle
            # connection failed with a ReadError (seen under load with the SDK).
            timeout_keep_alive=settings.http_keep_alive_seconds,
        )
    return 0


def _shared_memory_for_workers(settings: Settings) -> None:
    """Make sure several workers share one Redis, as they must, or refuse to start them.

    A worker falls back to process memory when Redis is not configured or not reachable:
    alone that is a working server, but among several each would keep its own threads,
    runs and limits, and a client would find its thread on one worker and not the next.

    Raises:
        RedisUnavailableError: no Redis configured, or none answering at its URL.
    """
    if settings.redis_url is None:
        raise RedisUnavailableError(
            "several workers share threads, runs and limits through Redis, and "
            "ALMA_REDIS_URL is empty: set it, or serve with one worker"
        )
    url = str(settings.redis_url)
    try:
        with sync_client(url, cluster=settings.redis_cluster) as client:
            client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(
            f"several workers share threads, runs and limits through Redis, and Redis at "
            f"{redact_url(url)} cannot be used ({exc}): start it, or serve with one worker"
        ) from exc
    # The workers read their settings anew: none may fall back to memory later either.
    os.environ["ALMA_REDIS_REQUIRED"] = "true"


@contextlib.contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory where they all write their metrics."""
    if workers == 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="alma-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _chat(args: argparse.Namespace, settings: Settings) -> int:
    context = RunContext(
        router=args.router, route=args.route, refine=args.refine, max_plan_steps=args.max_steps,
        review_plan=args.review_plan,
    )  # fmt: skip
    thread_id = args.thread or str(uuid.uuid4())
    style = Style(enabled=sys.stdout.isatty())
    lines: Iterable[str] = [args.message] if args.message else _read_messages(style)
    # Answers come from the same input as the messages, read a line at a time.
    review = partial(ask_review, read_line=sys.stdin.readline, out=sys.stdout)
    # How every turn is shown, in this process or from a server.
    show: dict[str, Any] = {
        "context": context,
        "style": style,
        "review": review,
        "thread_id": thread_id,
    }
    if args.url:
        return await _chat_remote(args.url, args.key, lines, thread_id, show)
    # The terminal runs on the service's own parts, built as `alma serve` builds them.
    async with open_services(settings) as services:
        engine_run = partial(render_engine_run, services, owner=args.owner)
        try:
            return await _converse(
                lines, Branching(LocalCheckpoints(services.graph, thread_id)),
                lambda text, fork: engine_run(text, checkpoint=fork, **show),
                LocalMemories(services.memory.store, args.owner),
            )  # fmt: skip
        except Refused as exc:
            print(f"alma: the run was refused: {exc.message}", file=sys.stderr)
            return 1


async def _chat_remote(
    url: str, key: str | None, lines: Iterable[str], thread_id: str, show: dict[str, Any]
) -> int:
    headers = {"x-api-key": key} if key else {}
    try:
        async with (
            open_thread(url, thread_id, additional_headers=headers) as client,
            httpx.AsyncClient(base_url=http_url(url), headers=headers, timeout=30) as http,
        ):
            await client.subscribe(*SHOWN)
            branching = Branching(RemoteCheckpoints(client, http, thread_id))
            return await _converse(
                lines, branching,
                lambda text, fork: render_remote_run(client, text, checkpoint=fork, **show),
                RemoteMemories(http),
            )  # fmt: skip
    except (CommandError, httpx.HTTPStatusError) as exc:
        print(f"alma: the server refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, InvalidURI, InvalidHandshake, ConnectionError, httpx.TransportError) as exc:
        print(f"alma: cannot talk to {url}: {exc}", file=sys.stderr)
        return 1


async def _converse(
    lines: Iterable[str],
    branching: Branching,
    run: Callable[[str, str | None], Awaitable[RunReport]],
    memories: Memories,
) -> int:
    """Run each line as a turn of one conversation (`/retry`, `/edit`: the last again).

    The memory commands (`/memories`, `/forget KEY`) are answered between turns.
    """
    status = 0
    last: str | None = None
    for line in lines:
        if await answer_memory_command(line, memories, sys.stdout):
            continue
        try:
            turn = read_turn(line, last)
        except ValueError as exc:
            print(f"alma: {exc} ({RERUN_HELP})", file=sys.stderr)
            continue
        report = await run(turn.text, await branching.fork_point(turn))
        last = turn.text
        status = 1 if report.error else status
    return status


def _read_messages(style: Style) -> Iterator[str]:
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print(style.bold("you> "), end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield line.strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `alma` command."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["loadtest"]:
        from loadtests.run import main as loadtest

        return loadtest(arguments[1:])
    if arguments[:1] == ["eval"]:
        from evals.runner import main as evaluate

        return evaluate(arguments[1:])
    args = _parser().parse_args(arguments)
    try:
        settings = Settings()
        setup = settings.log_setup(split_streams=args.command == "serve")
        # A terminal command's output is its answer: its logs stay on stderr, readable,
        # without the libraries' routine lines (httpx's line per model call) between
        # the streamed tokens.
        if args.command != "serve":
            if settings.log_format == "auto":
                setup = dataclasses.replace(setup, format="console")
            if logging.getLevelNamesMapping()[setup.level.upper()] < logging.WARNING:
                setup = dataclasses.replace(setup, libraries_level="warning")
        if args.verbose:
            setup = dataclasses.replace(setup, level="debug", libraries_level=None)
        configure_logging(setup)
        if args.command == "chat" and not args.verbose:
            # The terminal prints each run itself; the engine's line per run would repeat it.
            logging.getLogger("alma.engine").setLevel(logging.WARNING)
        if args.command == "serve":
            return _serve(args, settings)
        if args.command == "config":
            print(example_env() if args.example else show_settings(settings) + "\n", end="")
            return 0
        if args.command == "keygen":
            key, entry = new_key(args.owner)
            print(f"key (give to {args.owner}; it is not stored anywhere): {key}")
            print(f"add to ALMA_API_KEYS: {entry}")
            return 0
        return asyncio.run(_chat(args, settings))
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(f"alma: {line}", file=sys.stderr)
        return 2
    except (AlmaError, RedisUnavailableError, ValueError) as exc:
        print(f"alma: {exc}", file=sys.stderr)
        return 2
    except RedisError as exc:
        print(f"alma: conversation memory (Redis) failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
