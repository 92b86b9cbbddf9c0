"""A Redis URL in a log line or a report never shows its password."""

import pytest

from memory.connection import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://alice:s3cret@cache:6379/0", "redis://alice:***@cache:6379/0"),
        ("rediss://:s3cret@cache:6380", "rediss://***@cache:6380"),
        ("redis://cache:6379/2", "redis://cache:6379/2"),
    ],
)
def test_the_password_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown
