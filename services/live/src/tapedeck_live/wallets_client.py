"""The wallet service as the pre-trade gate sees it: one wallet's balances over gRPC."""

from __future__ import annotations

import logging
from datetime import UTC
from decimal import Decimal, InvalidOperation

import grpc

from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tapedeck_common.channels import service_channel
from tapedeck_common.errors import DeadlineExceeded, Unavailable
from tapedeck_common.request_ids import outgoing
from tapedeck_live.domain import WalletBalance

logger = logging.getLogger(__name__)


class WalletDirectory:
    """A pooled channel to the wallet service, calling it with the service token."""

    def __init__(self, *, address: str, service_token: str | None, max_timeout: float) -> None:
        self._address = address
        self._max_timeout = max_timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            () if service_token is None else (("authorization", f"Bearer {service_token}"),)
        )
        # GetWallet only reads: safe to send again when the wallet service was unreachable.
        self._channel = service_channel(
            address, idempotent=[("tapedeck.wallets.v1.WalletService", "GetWallet")]
        )
        self._stub = wallets_pb2_grpc.WalletServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def balances(
        self, wallet_id: str, *, time_remaining: float | None
    ) -> dict[str, WalletBalance] | None:
        """Return the wallet's balances by asset, None when it does not exist.

        The call gets the caller's remaining time, capped by our own maximum, so a caller that
        gives up stops the wallet service's work too.
        """
        timeout = self._max_timeout
        callers = time_remaining is not None and time_remaining < timeout
        if time_remaining is not None:
            if time_remaining <= 0:
                raise DeadlineExceeded("the deadline passed before asking the wallet service")
            timeout = min(timeout, time_remaining)
        try:
            reply = await self._stub.GetWallet(
                wallets_pb2.GetWalletRequest(name=f"wallets/{wallet_id}"),
                timeout=timeout,
                metadata=outgoing(self._metadata),
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code == grpc.StatusCode.NOT_FOUND:
                return None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                if callers:
                    raise DeadlineExceeded(
                        "the deadline passed while waiting for the wallet service"
                    ) from None
                raise Unavailable(
                    f"the wallet service did not answer within {self._max_timeout:g}s"
                ) from None
            if code != grpc.StatusCode.UNAVAILABLE:
                # Our token refused, or a fault over there: either way we cannot vouch for the order.
                logger.error("wallet service answered %s: %s", code.name, error.details())
            raise Unavailable(
                f"the wallet service at {self._address} is unavailable ({code.name})"
            ) from None
        return _balances(reply.wallet)


def _balances(wallet: wallets_pb2.Wallet) -> dict[str, WalletBalance]:
    balances: dict[str, WalletBalance] = {}
    for balance in wallet.balances:
        try:
            available = Decimal(balance.available or "0")
            if not available.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise Unavailable(
                f"the wallet service sent an unreadable {balance.asset} balance"
            ) from None
        updated = (
            balance.update_time.ToDatetime(tzinfo=UTC) if balance.HasField("update_time") else None
        )
        balances[balance.asset] = WalletBalance(
            asset=balance.asset, available=available, update_time=updated
        )
    return balances
