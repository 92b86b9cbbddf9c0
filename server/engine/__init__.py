"""The run engine: starts, runs, streams, cancels and accounts for runs of the graph.

It knows nothing of HTTP or WebSockets: the wire formats (`server.agent_protocol.commands` for the
agent protocol, `server.web.routes` for the LangGraph API) call it and render its events.
"""

from server.engine.manager import RunManager
from server.engine.run import NO_ACTIVE_RUN, Run, StartRequest, StreamFormat
from server.engine.starting import RunStarter

__all__ = [
    "NO_ACTIVE_RUN",
    "Run",
    "RunManager",
    "RunStarter",
    "StartRequest",
    "StreamFormat",
]
