"""The Coinbase emulator's protocol and our reading of its responses."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from tapedeck_dev.emulator import generate_key
from tapedeck_wallets.exchange.coinbase import (
    CoinbaseClient,
    classify_http,
    parse_accounts,
    parse_price,
    retry_after_seconds,
)
from tapedeck_wallets.exchange.domain import ErrorKind, ExchangeAccount, ExchangeFailure


async def test_emulator_refuses_requests_without_a_valid_jwt(exchange):
    pid, _ = exchange.portfolio({"BTC": ("1", "0")})
    url = f"{exchange.emulator.base_url}/api/v3/brokerage/accounts"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as anonymous:
            assert anonymous.status == 401
        async with session.get(url, headers={"Authorization": "Bearer not.a.jwt"}) as forged:
            assert forged.status == 401
    assert exchange.emulator.rejected == 2
    assert exchange.emulator.requests[pid] == 0


async def test_client_reads_every_page_with_exact_decimals(exchange):
    balances = {
        f"A{i:03d}": (f"{i}.123456789012345678", "0.000000000000000001") for i in range(300)
    }
    pid, key = exchange.emulator.add_portfolio(balances)
    client = CoinbaseClient(
        account=ExchangeAccount("coinbase", pid, "K"),
        key_name=key.name,
        private_key=key.private_key_pem,
        api_url=exchange.emulator.base_url,
        timeout=5,
    )
    try:
        fetched = await client.fetch_balances()
    finally:
        await client.close()
    assert len(fetched) == 300
    assert fetched["A007"].available == Decimal("7.123456789012345678")
    assert fetched["A007"].total == Decimal("7.123456789012345679")
    assert exchange.emulator.requests[pid] == 2  # 250 + 50: cursor pagination followed


async def test_a_key_for_another_portfolio_is_refused(exchange):
    pid, _ = exchange.emulator.add_portfolio({"BTC": ("1", "0")})
    _, other_key = exchange.emulator.add_portfolio({})
    client = CoinbaseClient(
        account=ExchangeAccount("coinbase", pid, "K"),
        key_name=other_key.name,
        private_key=other_key.private_key_pem,
        api_url=exchange.emulator.base_url,
        timeout=5,
    )
    try:
        with pytest.raises(ExchangeFailure) as caught:
            await client.fetch_balances()
    finally:
        await client.close()
    assert caught.value.kind is ErrorKind.AUTHENTICATION


def test_a_signing_key_never_shows_in_its_repr():
    key = generate_key()
    assert "PRIVATE" not in repr(key)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "no accounts list"),
        ({"accounts": "BTC"}, "no accounts list"),
        (
            {"accounts": [{"currency": "BTC", "available_balance": {"value": 1.5}}]},
            "decimal string",
        ),
        ({"accounts": [{"currency": "BTC", "available_balance": {"value": "NaN"}}]}, "finite"),
        ({"accounts": [{"currency": "BTC"}]}, "available_balance"),
        ({"accounts": [{"available_balance": {"value": "1"}}]}, "currency"),
    ],
)
def test_malformed_accounts_are_bad_responses_never_zero(body, reason):
    with pytest.raises(ExchangeFailure) as caught:
        parse_accounts(body)
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
    assert reason in caught.value.message


def test_accounts_of_one_currency_are_summed():
    parsed = parse_accounts(
        {
            "accounts": [
                {
                    "currency": "BTC",
                    "available_balance": {"value": "1.1"},
                    "hold": {"value": "0.1"},
                },
                {"currency": "BTC", "available_balance": {"value": "2"}, "hold": {"value": "0"}},
            ]
        }
    )
    assert parsed["BTC"].available == Decimal("3.1")
    assert parsed["BTC"].total == Decimal("3.2")


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        (401, {}, "Unauthorized", ErrorKind.AUTHENTICATION),
        (403, {}, "{}", ErrorKind.AUTHENTICATION),
        (429, {"Retry-After": "7"}, "{}", ErrorKind.RATE_LIMITED),
        (502, {}, "<html>bad gateway</html>", ErrorKind.UNAVAILABLE),
        (404, {}, "{}", ErrorKind.BAD_RESPONSE),
        (200, {}, "", ErrorKind.BAD_RESPONSE),
        (200, {}, '{"accounts": [', ErrorKind.BAD_RESPONSE),
        (200, {}, "[1, 2]", ErrorKind.BAD_RESPONSE),
    ],
)
def test_http_answers_are_classified_by_status_and_body(status, headers, body, kind):
    failure = classify_http(status, headers, body)
    assert failure is not None
    assert failure.kind is kind


def test_a_well_formed_answer_is_not_a_failure_and_retry_after_parses():
    assert classify_http(200, {}, '{"accounts": []}') is None
    assert classify_http(429, {"retry-after": "2.5"}, "").retry_after == 2.5  # type: ignore[union-attr]
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"product_id": "BTC-USD", "price": "64250.50"}, Decimal("64250.50")),
        ({"product_id": "BTC-USD", "price": ""}, None),
        ({"product_id": "BTC-USD", "price": "0"}, None),
    ],
)
def test_a_product_price_is_read_exactly_and_an_empty_one_is_no_price(body, expected):
    assert parse_price(body, "BTC-USD") == expected


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": "BTC-USD", "price": 64250.5},
        {"product_id": "BTC-USD", "price": "-1"},
        {"product_id": "ETH-USD", "price": "1"},
        [],
    ],
)
def test_a_product_response_of_the_wrong_shape_is_a_bad_response(body):
    with pytest.raises(ExchangeFailure) as caught:
        parse_price(body, "BTC-USD")
    assert caught.value.kind is ErrorKind.BAD_RESPONSE
