"""The manager as an MCP server at `/mcp` (Model Context Protocol, streamable HTTP).

`endpoint` mounts the transport behind ALMA's key check; `tool` describes the manager
tool and runs each call through the engine; `progress` turns a run's events into the
progress notifications a client asked for.
"""

from server.mcp.endpoint import mount

__all__ = ["mount"]
