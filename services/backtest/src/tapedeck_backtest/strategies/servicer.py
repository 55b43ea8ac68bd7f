"""The strategy RPC of BacktestService: the strategies a run can use, from the registry."""

from __future__ import annotations

from typing import Any

import grpc

from tapedeck.backtest.v1 import backtest_pb2 as pb
from tapedeck_backtest.strategies import messages
from tapedeck_backtest.strategies.registry import StrategyRegistry
from tapedeck_common.paging import PageTokens

Context = grpc.aio.ServicerContext[Any, Any]


class StrategyRpcs:
    """ListStrategies."""

    def __init__(self, registry: StrategyRegistry, *, page_tokens: PageTokens) -> None:
        self._registry = registry
        self._page_tokens = page_tokens

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Context
    ) -> pb.ListStrategiesResponse:
        """List the strategies a run can use, with their parameters, by id."""
        page = self._page_tokens.page(request, query="ListStrategies:", keys=(str,))
        after = "" if page.after is None else str(page.after[0])
        following = [d for d in self._registry.list() if d.id > after][: page.fetch]
        kept, token = page.cut(following, lambda definition: (definition.id,))
        return pb.ListStrategiesResponse(
            strategies=[messages.strategy_to_proto(d) for d in kept], next_page_token=token
        )
