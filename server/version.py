"""The version of ALMA that is running."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("alma")
except PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0+unknown"
