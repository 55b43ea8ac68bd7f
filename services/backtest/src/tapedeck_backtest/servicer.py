"""BacktestService: proto <-> domain; RPCs not built yet answer UNIMPLEMENTED (the generated base)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.backtest.v1 import backtest_pb2_grpc


class BacktestServicer(backtest_pb2_grpc.BacktestServiceServicer):
    """The backtest service's RPCs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
