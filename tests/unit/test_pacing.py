"""Write pacing: a run's least interval, widened when many runs write at once."""

from __future__ import annotations

import pytest

from server.engine.pacing import WritePacing


@pytest.mark.parametrize(
    ("active", "expected"),
    [(0, 0.05), (1, 0.05), (20, 0.05), (40, 0.1), (200, 0.5)],
)
def test_the_interval_widens_so_the_process_writes_at_most_its_rate(
    active: int, expected: float
) -> None:
    pacing = WritePacing(least=0.05, writes_per_second=400, active=active)
    assert pacing.interval() == pytest.approx(expected)


def test_without_a_rate_the_least_interval_holds_at_any_load() -> None:
    assert WritePacing(least=0.05, active=10_000).interval() == 0.05
    assert WritePacing().interval() == 0.0
