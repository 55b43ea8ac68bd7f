"""LiveService: proto <-> domain; RPCs not built yet answer UNIMPLEMENTED (the generated base)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.live.v1 import live_pb2_grpc


class LiveServicer(live_pb2_grpc.LiveServiceServicer):
    """The live service's RPCs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
