"""The agent streaming protocol, one of the two wire formats.

Its messages, its commands over WebSocket and HTTP, and a client of it.
"""
