"""Exchange prices cached per product for a short TTL, with single-flight fetches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tapedeck_wallets.exchange.domain import ExchangeFailure

FetchPrice = Callable[[str], Awaitable[Decimal | None]]


@dataclass(frozen=True, slots=True)
class Quote:
    """A product's price as the exchange gave it at one instant; None when it is not listed."""

    price: Decimal | None
    fetch_time: datetime


class PriceBook:
    """Product prices reused for a TTL; concurrent callers share one fetch per product."""

    def __init__(self, fetch: FetchPrice, *, ttl: float) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._quotes: dict[str, tuple[float, Quote]] = {}
        self._inflight: dict[str, asyncio.Task[Quote]] = {}

    async def quotes(self, product_ids: Sequence[str]) -> dict[str, Quote | ExchangeFailure]:
        """Return each product's quote, or why the exchange could not give it."""
        results = await asyncio.gather(
            *(self._quote(product_id) for product_id in product_ids), return_exceptions=True
        )
        answers: dict[str, Quote | ExchangeFailure] = {}
        for product_id, result in zip(product_ids, results, strict=True):
            if isinstance(result, Quote | ExchangeFailure):
                answers[product_id] = result
            else:
                raise result
        return answers

    async def _quote(self, product_id: str) -> Quote:
        cached = self._quotes.get(product_id)
        if cached is not None and time.monotonic() - cached[0] <= self._ttl:
            return cached[1]
        task = self._inflight.get(product_id)
        if task is None:
            task = asyncio.create_task(self._load(product_id), name=f"price {product_id}")
            self._inflight[product_id] = task
            task.add_done_callback(lambda done: self._forget(product_id, done))
        # Shielded: one caller giving up must not cancel the fetch the others are waiting on.
        return await asyncio.shield(task)

    async def _load(self, product_id: str) -> Quote:
        fetched = time.monotonic()
        quote = Quote(price=await self._fetch(product_id), fetch_time=datetime.now(UTC))
        if self._ttl > 0:
            self._quotes[product_id] = (fetched, quote)
        return quote

    def _forget(self, product_id: str, task: asyncio.Task[Quote]) -> None:
        if self._inflight.get(product_id) is task:
            del self._inflight[product_id]
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported as lost

    async def close(self) -> None:
        """Cancel fetches in flight and forget every quote."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._quotes.clear()
