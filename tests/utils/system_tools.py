"""The system tools the tests drive for real, and the Debian package of each.

A test whose tool is missing fails at once with one line that names the tool and the
package to install, rather than with a stack from deep inside a fixture.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "chromium": "chromium",
    "nginx": "nginx-light",
    "promtool": "prometheus",
    "node": "nodejs",
    "npm": "npm",
}
"""Tool → the Debian or Ubuntu package that provides it."""

# nginx lives in sbin, which is not on every user's PATH.
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def find_tool(name: str) -> str | None:
    """Where `name` is installed, or `None`."""
    return shutil.which(name, path=_SEARCH)


def require_tool(name: str) -> str:
    """The path of `name`; the calling test fails with how to install it when it is missing."""
    found = find_tool(name)
    if found is None:
        pytest.fail(f"{name} is not installed: apt-get install {PACKAGES[name]}", pytrace=False)
    return found
