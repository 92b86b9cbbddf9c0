"""Per-caller counts over a sliding window: runs, model tokens and writes.

A sliding-window counter, as the `limits` library keeps one: a count per fixed window,
and the caller's use now is this window's count plus the last window's, weighted by
how much of it still lies within one window of now. ALMA keeps its own because of what
the library costs per run in Redis: checking the token budget, taking a run and reading
what is left took three library calls, and charging the tokens two more — 31 commands.
Here a caller's windows are one hash, and checking any number of limits and charging
them is one script: three commands.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

# KEYS[1]: the caller's hash, `kind:window number` → count.
# ARGV: now (ms), window (ms), capped (1/0), then `kind, limit, cost` per limit.
# Returns: the number of the limit that refused (0: none), ms left in this window, and
# each limit's use after the charge.
_CHARGE = """
local now, window, capped = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == "1"
local current = math.floor(now / window)
local left = (current + 1) * window - now
local weight = left / window
local fields = {}
for i = 4, #ARGV, 3 do
  fields[#fields + 1] = ARGV[i] .. ":" .. current
  fields[#fields + 1] = ARGV[i] .. ":" .. (current - 1)
end
local found = redis.call("HMGET", KEYS[1], unpack(fields))
local used, costs, refused = {}, {}, 0
for n = 1, #fields / 2 do
  local limit, cost = tonumber(ARGV[3 * n + 2]), tonumber(ARGV[3 * n + 3])
  local use = (tonumber(found[2 * n - 1]) or 0) + (tonumber(found[2 * n]) or 0) * weight
  if capped then
    cost = math.max(0, math.min(cost, math.floor(limit - use)))
  elseif refused == 0 and ((cost == 0 and use >= limit) or use + cost > limit) then
    refused = n
  end
  used[n], costs[n] = use, cost
end
if refused == 0 then
  for n = 1, #costs do
    if costs[n] > 0 then
      used[n] = used[n] + costs[n]
      if redis.call("HINCRBY", KEYS[1], fields[2 * n - 1], costs[n]) == costs[n] then
        -- A window's first charge: the one before the last is of no more use.
        redis.call("HDEL", KEYS[1], ARGV[3 * n + 1] .. ":" .. (current - 2))
        redis.call("PEXPIRE", KEYS[1], 2 * window)
      end
    end
  end
end
local reply = {refused, left}
for n = 1, #used do reply[#reply + 1] = math.ceil(used[n]) end
return reply
"""


@dataclass(frozen=True, slots=True)
class Charge:
    """One limit to check, and what to count against it."""

    kind: str
    limit: int
    cost: int
    """0: only check that some room is left."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a charge found."""

    refused: int | None
    """The index of the first charge that did not fit (then none was counted)."""
    used: list[int]
    """Each limit's use, after the charge when it was counted."""
    reset_after: float
    """Seconds until the current window ends."""


class Windows(Protocol):
    """Sliding-window counts per caller."""

    async def charge(self, key: str, charges: Sequence[Charge], *, capped: bool) -> Outcome:
        """Count every charge if all fit; `capped`: count what fits of each instead."""


def _args(now: float, window: int, capped: bool, charges: Sequence[Charge]) -> list[Any]:
    args: list[Any] = [int(now * 1000), window * 1000, int(capped)]
    for c in charges:
        args += [c.kind, c.limit, c.cost]
    return args


def _outcome(reply: Sequence[Any]) -> Outcome:
    refused, left, *used = (int(value) for value in reply)
    return Outcome(refused - 1 if refused else None, used, left / 1000)


class RedisWindows:
    """Windows in one Redis hash per caller, shared by every process."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Keep caller `K`'s windows at `<prefix>:{K}`; windows are `window` seconds."""
        self.prefix = prefix
        self.window = window
        self.clock = clock
        self._charge: Any = client.register_script(_CHARGE)

    async def charge(self, key: str, charges: Sequence[Charge], *, capped: bool) -> Outcome:
        """See `Windows.charge`."""
        reply = await self._charge(
            keys=[f"{self.prefix}:{{{key}}}"],
            args=_args(self.clock(), self.window, capped, charges),
        )
        return _outcome(reply)


class MemoryWindows:
    """Windows in process memory, when there is no Redis: the same arithmetic."""

    def __init__(self, *, window: int, clock: Callable[[], float] = time.time) -> None:
        """Windows are `window` seconds."""
        self.window = window
        self.clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}

    async def charge(self, key: str, charges: Sequence[Charge], *, capped: bool) -> Outcome:
        """See `Windows.charge`."""
        span = self.window * 1000
        now = int(self.clock() * 1000)
        current = now // span
        left = (current + 1) * span - now
        weight = left / span
        used: list[float] = []
        costs: list[int] = []
        refused: int | None = None
        for n, c in enumerate(charges):
            use = self._counts.get((key, c.kind, current), 0) + weight * self._counts.get(
                (key, c.kind, current - 1), 0
            )
            cost = c.cost
            if capped:
                cost = max(0, min(cost, math.floor(c.limit - use)))
            elif refused is None and ((cost == 0 and use >= c.limit) or use + cost > c.limit):
                refused = n
            used.append(use)
            costs.append(cost)
        if refused is None:
            for n, (c, cost) in enumerate(zip(charges, costs, strict=True)):
                if cost > 0:
                    used[n] += cost
                    self._counts[(key, c.kind, current)] = (
                        self._counts.get((key, c.kind, current), 0) + cost
                    )
                    self._counts.pop((key, c.kind, current - 2), None)
        return Outcome(refused, [math.ceil(u) for u in used], left / 1000)
