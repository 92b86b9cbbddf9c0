"""A local HTTP server standing in for the LangSmith API: it records what it is sent.

It answers what the LangSmith client asks while tracing: `/info`, run ingestion
(`/runs/multipart`, `/runs/batch`) and project lookup (`/sessions`), and counts every
TCP connection made to it, so a test can also show that none was made.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TENANT_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
PROJECT_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")


@dataclass
class Recorded:
    """What the stand-in has been sent."""

    connections: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every traced run by id, posts and patches merged."""
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Projects and experiments, as created."""
    feedback: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def merge(self, operation: str, run_id: str, part: str | None, value: Any) -> None:
        run = self.runs.setdefault(run_id, {"id": run_id})
        run.setdefault("_operations", set()).add(operation)
        if part is None and isinstance(value, dict):
            extra = value.pop("extra", None)
            run.update(value)
            if isinstance(extra, dict):
                run.setdefault("extra", {}).update(extra)
        elif part == "extra" and isinstance(value, dict):
            run.setdefault("extra", {}).update(value)
        elif part is not None:
            run[part] = value

    def wait_for(self, check: Any, timeout: float = 30) -> Any:
        """Block until `check(self)` is truthy; its value."""
        with self.changed:
            result = self.changed.wait_for(lambda: check(self), timeout)
        if not result:
            raise AssertionError(f"the stand-in never saw it; requests: {self.requests[-10:]}")
        return result


def _multipart(content_type: str, body: bytes) -> Iterator[tuple[str, Any]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            yield name, json.loads(payload)


_NOW = "2026-01-01T00:00:00+00:00"


def _dataset(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": body["name"], "description": body.get("description"),
            "created_at": _NOW, "modified_at": _NOW, "data_type": body.get("data_type", "kv"),
            "example_count": 0, "session_count": 0, "tenant_id": str(TENANT_ID)}  # fmt: skip


def _example(dataset_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(body.get("id") or uuid.uuid4()), "dataset_id": dataset_id,
            "inputs": body.get("inputs") or {}, "outputs": body.get("outputs"),
            "metadata": body.get("metadata") or {}, "created_at": _NOW,
            "modified_at": _NOW}  # fmt: skip


def _session(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(body.get("id") or uuid.uuid4()), "name": body.get("name"),
            "start_time": _NOW, "tenant_id": str(TENANT_ID),
            "reference_dataset_id": body.get("reference_dataset_id"),
            "description": body.get("description"), "extra": body.get("extra") or {}}  # fmt: skip


def _store(recorded: Recorded, method: str, path: str, query: dict[str, list[str]],
           body: Any) -> Any:  # fmt: skip
    """Answer the dataset, example, experiment and feedback calls from memory."""
    parts = path.strip("/").split("/")
    offset = int((query.get("offset") or ["0"])[0])
    limit = int((query.get("limit") or ["100"])[0])
    if parts[0] == "datasets":
        if method == "POST" and len(parts) == 1:
            dataset = _dataset(body)
            recorded.datasets[dataset["id"]] = dataset
            return dataset
        if len(parts) == 1:
            names = query.get("name")
            name = names[0] if names else None
            found = [d for d in recorded.datasets.values() if name in (None, d["name"])]
            return found[offset : offset + limit]
        return recorded.datasets.get(parts[1]) or ({"detail": "not found"}, 404)
    if parts[0] == "examples":
        if method == "POST":
            items = body if isinstance(body, list) else [body]
            made = [_example(str(item["dataset_id"]), item) for item in items]
            recorded.examples.update({e["id"]: e for e in made})
            return made if isinstance(body, list) else made[0]
        wanted = set(query.get("dataset") or [])
        found = [e for e in recorded.examples.values() if not wanted or e["dataset_id"] in wanted]
        # Pages, as the real API: the client reads until a page comes back short.
        return found[offset : offset + limit]
    if parts[0] == "sessions" and method == "POST":
        session = _session(body)
        recorded.sessions[session["id"]] = session
        return session
    if parts[0] == "sessions" and len(parts) > 1:
        session = recorded.sessions.setdefault(parts[1], _session({"id": parts[1]}))
        if method == "PATCH" and isinstance(body, dict):
            session.update({k: v for k, v in body.items() if v is not None})
        return session
    if parts[0] == "feedback" and method == "POST":
        recorded.feedback.append(body)
        return {"id": str(uuid.uuid4()), **body}
    return None


def _handler(recorded: Recorded) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, value: Any, status: int = 200) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _record(self, body: bytes) -> None:
            path = urlparse(self.path).path
            with recorded.changed:
                recorded.requests.append((self.command, path))
                if path == "/runs/multipart":
                    for name, value in _multipart(self.headers["content-type"], body):
                        operation, run_id, *part = name.split(".")
                        recorded.merge(operation, run_id, part[0] if part else None, value)
                elif path == "/runs/batch":
                    batch = json.loads(body)
                    for operation in ("post", "patch"):
                        for run in batch.get(operation) or []:
                            recorded.merge(operation, str(run["id"]), None, run)
                elif path.startswith("/runs/") and self.command == "PATCH":
                    recorded.merge("patch", path.rsplit("/", 1)[1], None, json.loads(body))
                elif path == "/runs" and self.command == "POST":
                    run = json.loads(body)
                    recorded.merge("post", str(run["id"]), None, run)
                recorded.changed.notify_all()

        def _serve(self) -> None:
            raw = b"" if self.command == "GET" else self._body()
            self._record(raw)
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if url.path == "/info":
                self._answer({"version": "0.10.0", "batch_ingest_config": {}})
                return
            if url.path == "/sessions" and self.command == "GET":
                name = (query.get("name") or ["default"])[0]
                known = [x for x in recorded.sessions.values() if x["name"] == name]
                self._answer(known or [_session({"id": str(PROJECT_ID), "name": name})])
                return
            json_body = "json" in (self.headers.get("content-type") or "")
            body = json.loads(raw) if raw and json_body else None
            with recorded.changed:
                result = _store(recorded, self.command, url.path, query, body)
                recorded.changed.notify_all()
            if isinstance(result, tuple):
                self._answer(result[0], status=result[1])
            else:
                self._answer({} if result is None else result)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815 - the stdlib's naming

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded
        super().__init__(("127.0.0.1", 0), _handler(recorded))

    def get_request(self) -> Any:
        accepted = super().get_request()
        with self.recorded.changed:
            self.recorded.connections += 1
        return accepted


@dataclass
class LangSmithStandIn:
    """A running stand-in and what it has recorded."""

    url: str
    recorded: Recorded


@contextmanager
def langsmith_stand_in() -> Iterator[LangSmithStandIn]:
    """Serve the stand-in on a free loopback port for the duration of the block."""
    recorded = Recorded()
    server = _CountingServer(recorded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LangSmithStandIn(
            url=f"http://127.0.0.1:{server.server_address[1]}", recorded=recorded
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
