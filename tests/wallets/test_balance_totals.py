"""GetBalanceTotals: stored balances summed per asset over every wallet, valued at exchange prices."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest

from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_dev.emulator import Fault, FaultKind
from tests.support import field_violations

PRICED = wallets_pb2.PRICE_STATUS_PRICED
QUOTE = wallets_pb2.PRICE_STATUS_QUOTE
NO_MARKET = wallets_pb2.PRICE_STATUS_NO_MARKET
UNAVAILABLE = wallets_pb2.PRICE_STATUS_UNAVAILABLE


async def _totals(svc, quote: str = "USD") -> wallets_pb2.GetBalanceTotalsResponse:
    return await svc.stub.GetBalanceTotals(
        wallets_pb2.GetBalanceTotalsRequest(quote_currency=quote)
    )


async def _three_wallets(svc) -> None:
    await svc.create_wallet(
        "desk-a",
        balances={"BTC": ("1.123456789012345678", "0.000000000000000001"), "USD": ("100.5", "0")},
    )
    await svc.create_wallet(
        "desk-b", balances={"BTC": ("2", "0.5"), "ETH": ("10", "0"), "DOGE": ("1000", "0")}
    )
    await svc.create_wallet("desk-c", balances={"USD": ("0.25", "0.25")})


def _by_asset(reply: wallets_pb2.GetBalanceTotalsResponse) -> dict[str, wallets_pb2.AssetTotal]:
    return {asset.asset: asset for asset in reply.assets}


async def test_totals_sum_every_wallet_exactly_and_value_each_asset_at_the_exchange_price(
    service,
):
    async with service() as svc:
        svc.exchange.emulator.set_prices({"BTC-USD": "64250.5", "ETH-USD": "3120.25"})
        await _three_wallets(svc)
        reply = await _totals(svc)
    assets = _by_asset(reply)
    assert [a.asset for a in reply.assets] == ["BTC", "DOGE", "ETH", "USD"]
    btc, doge, eth, usd = assets["BTC"], assets["DOGE"], assets["ETH"], assets["USD"]
    # Exact to the last of 18 decimals: no float on either database.
    assert (btc.total, btc.wallet_count, btc.price_status) == ("3.623456789012345679", 2, PRICED)
    assert btc.price == "64250.5"
    assert Decimal(btc.value) == Decimal("3.623456789012345679") * Decimal("64250.5")
    assert (eth.total, eth.value, eth.price_status) == ("10", "31202.5", PRICED)
    assert (usd.total, usd.wallet_count, usd.price, usd.value) == ("101", 2, "1", "101")
    assert usd.price_status == QUOTE
    # No DOGE-USD product on the exchange: listed unpriced, never guessed.
    assert (doge.total, doge.price_status, doge.price, doge.value) == ("1000", NO_MARKET, "", "")
    assert reply.unpriced_count == 1
    assert Decimal(reply.total_value) == Decimal(btc.value) + Decimal("31202.5") + Decimal("101")
    assert reply.quote_currency == "USD"
    assert reply.price_error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_UNSPECIFIED
    assert reply.HasField("price_time")


async def test_no_wallets_give_no_assets_and_a_zero_total(service):
    async with service() as svc:
        reply = await _totals(svc, "EUR")
    assert (list(reply.assets), reply.total_value, reply.unpriced_count) == ([], "0", 0)
    assert not reply.HasField("price_time")


@pytest.mark.parametrize(
    ("quote", "message"),
    [("", "is required"), ("usd", "upper-case asset code"), ("B" * 40, "upper-case asset code")],
)
async def test_a_bad_quote_currency_is_invalid_argument_naming_the_field(service, quote, message):
    async with service() as svc:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _totals(svc, quote)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in field_violations(caught.value)["quote_currency"]


async def test_an_exchange_that_is_down_marks_prices_unavailable_and_still_answers(service):
    async with service(price_cache_ttl_seconds=0) as svc:
        emulator = svc.exchange.emulator
        emulator.set_prices({"BTC-USD": "64250.5", "ETH-USD": "3120.25"})
        await _three_wallets(svc)
        emulator.inject(Fault(FaultKind.SERVER_ERROR, status=503))
        down = await _totals(svc)
        emulator.clear_faults()
        back = await _totals(svc)
    statuses = {a.asset: a.price_status for a in down.assets}
    assert statuses == {"BTC": UNAVAILABLE, "DOGE": UNAVAILABLE, "ETH": UNAVAILABLE, "USD": QUOTE}
    assert (down.total_value, down.unpriced_count) == ("101", 3)
    assert down.price_error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_UNAVAILABLE
    assert "503" in down.price_error_message
    assert {a.asset: a.price_status for a in back.assets}["BTC"] == PRICED
    assert back.price_error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_UNSPECIFIED


async def test_a_price_fetch_that_hangs_is_cut_at_its_timeout(service):
    async with service(price_timeout_seconds=0.3) as svc:
        emulator = svc.exchange.emulator
        emulator.set_prices({"BTC-USD": "64250.5"})
        await svc.create_wallet("desk", balances={"BTC": ("1", "0")})
        emulator.inject(Fault(FaultKind.HANG))
        reply = await asyncio.wait_for(_totals(svc), timeout=5)
        emulator.clear_faults()
    assert reply.assets[0].price_status == UNAVAILABLE
    assert reply.price_error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_TIMEOUT


async def test_prices_are_reused_for_their_ttl_and_concurrent_callers_share_one_fetch(service):
    async with service(price_cache_ttl_seconds=60) as svc:
        emulator = svc.exchange.emulator
        emulator.set_prices({"BTC-USD": "64250.5", "ETH-USD": "3120.25"})
        await _three_wallets(svc)
        emulator.inject(Fault(FaultKind.LATENCY, seconds=0.2))
        replies = await asyncio.gather(*(_totals(svc) for _ in range(5)))
        emulator.set_prices({"BTC-USD": "70000"})
        cached = await _totals(svc)
    assert {r.total_value for r in replies} == {cached.total_value}
    assert emulator.product_requests["BTC-USD"] == 1
    assert emulator.product_requests["ETH-USD"] == 1
    assert emulator.product_requests["DOGE-USD"] == 1  # "not listed" is cached as well
    assert "USD-USD" not in emulator.product_requests


async def test_a_short_ttl_picks_up_a_new_price(service):
    async with service(price_cache_ttl_seconds=0) as svc:
        emulator = svc.exchange.emulator
        emulator.set_prices({"BTC-USD": "100"})
        await svc.create_wallet("desk", balances={"BTC": ("2", "0")})
        before = await _totals(svc)
        emulator.set_prices({"BTC-USD": "150.5"})
        after = await _totals(svc)
    assert (before.total_value, after.total_value) == ("200", "301")


async def test_a_rate_limit_is_honoured_without_asking_the_exchange_again(service):
    async with service(price_cache_ttl_seconds=0) as svc:
        emulator = svc.exchange.emulator
        emulator.set_prices({"BTC-USD": "64250.5"})
        await svc.create_wallet("desk", balances={"BTC": ("1", "0")})
        emulator.inject(Fault(FaultKind.RATE_LIMIT, seconds=30, times=1))
        limited = await _totals(svc)
        again = await _totals(svc)
    for reply in (limited, again):
        assert reply.assets[0].price_status == UNAVAILABLE
        assert reply.price_error_kind == wallets_pb2.EXCHANGE_ERROR_KIND_RATE_LIMITED
    assert "retry after" in again.price_error_message
    assert emulator.product_requests["BTC-USD"] == 1
