"""Request bodies over the limit are refused with 413, however they are sent."""

from typing import Any

from fastapi import FastAPI
from starlette.types import Message

from server.web.middleware import BodyLimit

LIMIT = 64


def endpoint_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    return app


async def post(chunks: list[bytes], *, declared: int | None = None) -> tuple[int, bytes]:
    headers = [(b"content-type", b"application/json")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
    }
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimit(endpoint_app(), limit=LIMIT)(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    status, body = await post([b"{}"], declared=LIMIT + 1)
    assert status == 413 and b"ALMA_MAX_BODY_BYTES" in body


async def test_a_chunked_body_over_the_limit_is_refused_with_413_not_a_parse_error() -> None:
    big = b'{"text": "' + b"x" * LIMIT + b'"}'
    status, body = await post([big[:40], big[40:]])
    assert status == 413 and b"ALMA_MAX_BODY_BYTES" in body


async def test_a_chunked_body_within_the_limit_reaches_the_endpoint_whole() -> None:
    status, body = await post([b'{"a": ', b"1}"])
    assert (status, body) == (200, b'{"a":1}')
