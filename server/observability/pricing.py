"""What model calls cost: a price table per model, in USD per million tokens."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import BaseModel, Field

logger = logging.getLogger("alma.server")


class ModelPrice(BaseModel):
    """USD per million tokens of one model."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)


# Public list prices when this table was written; operators override the whole table
# with ALMA_MODEL_PRICES when theirs differ.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(prompt=2.50, completion=10.00),
    "gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60),
    "gpt-4.1": ModelPrice(prompt=2.00, completion=8.00),
    "gpt-4.1-mini": ModelPrice(prompt=0.40, completion=1.60),
    "gpt-4.1-nano": ModelPrice(prompt=0.10, completion=0.40),
    "alma-simulated": ModelPrice(prompt=0.0, completion=0.0),
}


class PriceTable:
    """Looks up a model's price; dated variants (`gpt-4o-mini-2024-07-18`) match their base."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        # Longest names first, so `gpt-4o-mini-…` is not priced as `gpt-4o`.
        self._prices = sorted(prices.items(), key=lambda item: -len(item[0]))
        self._unknown: set[str] = set()

    def price(self, model: str) -> ModelPrice | None:
        """The price of `model`, or `None` if the table does not know it."""
        for name, price in self._prices:
            if model == name or model.startswith(name + "-"):
                return price
        return None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD of one call; 0 for a model the table does not know (said once in the log)."""
        price = self.price(model)
        if price is None:
            if model not in self._unknown:
                self._unknown.add(model)
                logger.warning("no price for model %r: its calls count as costing 0", model)
            return 0.0
        return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6
