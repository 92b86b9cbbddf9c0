"""How far apart a run's writes to its event log are, given how many runs are writing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class WritePacing:
    """The least time between two writes of one run's events, shared by a process's runs.

    Each run writes at most once per `least` seconds; and when many runs stream at once,
    their writes are spaced further so that together they make at most
    `writes_per_second` writes a second (0: no such cap). Past that, a write carries more
    events rather than the process making more writes: under load, every write is a
    round trip the saturated process pays for, while tokens that wait a moment longer
    still arrive in order. Events that must not wait (a run's start, its first answer
    token, its end) are not held by either.
    """

    least: float = 0.0
    writes_per_second: float = 0.0
    active: int = 0
    """Runs of this process writing now."""

    def interval(self) -> float:
        """Seconds one run waits between two writes, now."""
        if self.writes_per_second <= 0:
            return self.least
        return max(self.least, self.active / self.writes_per_second)
