"""WalletService: proto <-> domain; RPCs not built yet answer UNIMPLEMENTED (the generated base)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.wallets.v1 import wallets_pb2_grpc


class WalletServicer(wallets_pb2_grpc.WalletServiceServicer):
    """The wallet service's RPCs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
