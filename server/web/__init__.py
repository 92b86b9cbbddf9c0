"""HTTP and WebSocket transport of both wire formats.

The routes and their dependencies, the middleware, Server-Sent Events framing,
graceful drain, and the web page.
"""
