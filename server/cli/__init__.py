"""The `alma` command: serve, chat in the terminal, configure, make keys."""

from server.cli.main import main

__all__ = ["main"]
