"""Coinbase Advanced Trade through ccxt: one account's balances, read exactly, failures classified."""

from __future__ import annotations

import asyncio
import email.utils
import json
import ssl
import time
from collections.abc import Awaitable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from tapedeck_wallets.exchange.domain import (
    ErrorKind,
    ExchangeAccount,
    ExchangeBalance,
    ExchangeFailure,
)

# The Advanced Trade v3 endpoint lists every currency account with exact decimal strings.
FETCH_BALANCE_METHOD = "v3PrivateGetBrokerageAccounts"
# GET /api/v3/brokerage/market/products/{product_id}: the public twin of the authenticated
# products endpoint, so pricing needs no account's credentials.
FETCH_PRODUCT_METHOD = "v3PublicGetBrokerageMarketProductsProductId"
_MAX_MESSAGE = 200


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta seconds or an HTTP date."""
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify_http(
    status: int, headers: Mapping[str, str], body: str | None
) -> ExchangeFailure | None:
    """Return the failure an HTTP answer means, or None when it may hold balances."""
    text = (body or "").strip()
    snippet = text[:_MAX_MESSAGE]
    if status in (401, 403):
        return ExchangeFailure(
            ErrorKind.AUTHENTICATION, f"exchange refused the credentials (HTTP {status})"
        )
    if status == 429:
        lowered = {k.lower(): v for k, v in headers.items()}
        wait = retry_after_seconds(lowered.get("retry-after"))
        hint = "" if wait is None else f"; retry after {wait:g}s"
        return ExchangeFailure(
            ErrorKind.RATE_LIMITED, f"exchange rate limit (HTTP 429){hint}", retry_after=wait
        )
    if status >= 500:
        return ExchangeFailure(ErrorKind.UNAVAILABLE, f"exchange unavailable (HTTP {status})")
    if not 200 <= status < 300:
        return ExchangeFailure(
            ErrorKind.BAD_RESPONSE,
            f"exchange answered HTTP {status}: {snippet}",
            http_status=status,
        )
    if text == "":
        return ExchangeFailure(ErrorKind.BAD_RESPONSE, "exchange answered with an empty body")
    try:
        decoded = json.loads(text)
    except ValueError:
        return ExchangeFailure(ErrorKind.BAD_RESPONSE, "exchange answered with malformed JSON")
    if not isinstance(decoded, dict):
        return ExchangeFailure(ErrorKind.BAD_RESPONSE, "exchange answered with a non-object body")
    return None


def _amount(value: object, where: str) -> Decimal:
    # Only JSON strings are accepted: a JSON number has already been through a float.
    if not isinstance(value, str):
        raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"{where} is not a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"{where} is not a decimal") from None
    if not number.is_finite() or number < 0:
        raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"{where} is not a finite amount >= 0")
    return number


def parse_accounts(response: object) -> dict[str, ExchangeBalance]:
    """Return per-asset balances from a v3 brokerage accounts response, summing accounts per asset."""
    if not isinstance(response, dict) or not isinstance(response.get("accounts"), list):
        raise ExchangeFailure(ErrorKind.BAD_RESPONSE, "response has no accounts list")
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for index, account in enumerate(response["accounts"]):
        where = f"accounts[{index}]"
        if not isinstance(account, dict):
            raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"{where} is not an object")
        currency = account.get("currency")
        available = account.get("available_balance")
        hold = account.get("hold")
        if not isinstance(currency, str) or currency == "":
            raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"{where}.currency is missing")
        if not isinstance(available, dict):
            raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"{where}.available_balance is missing")
        free = _amount(available.get("value"), f"{where}.available_balance.value")
        held = (
            _amount(hold.get("value"), f"{where}.hold.value")
            if isinstance(hold, dict)
            else Decimal(0)
        )
        before = totals.get(currency, (Decimal(0), Decimal(0)))
        totals[currency] = (before[0] + free, before[1] + held)
    return {
        asset: ExchangeBalance(asset=asset, available=free, hold=held)
        for asset, (free, held) in totals.items()
    }


async def _bounded[T](call: Awaitable[T], seconds: float) -> T:
    """Await one ccxt call within the timeout, its failures classified as ExchangeFailure."""
    try:
        async with asyncio.timeout(seconds):
            return await call
    except ExchangeFailure:
        raise
    except (TimeoutError, ccxt_errors.RequestTimeout):
        raise ExchangeFailure(
            ErrorKind.TIMEOUT, f"exchange did not answer within {seconds:g}s"
        ) from None
    except ccxt_errors.AuthenticationError as error:
        raise ExchangeFailure(ErrorKind.AUTHENTICATION, type(error).__name__) from None
    except ccxt_errors.NetworkError as error:
        cause = error.__cause__
        detail = type(cause).__name__ if cause is not None else type(error).__name__
        raise ExchangeFailure(
            ErrorKind.UNAVAILABLE, f"exchange connection failed ({detail})"
        ) from None
    except (ccxt_errors.BaseError, KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ExchangeFailure(
            ErrorKind.BAD_RESPONSE, f"unexpected exchange response ({type(error).__name__})"
        ) from None


def parse_price(response: object, product_id: str) -> Decimal | None:
    """Return a product response's price, or None when the product has no price."""
    if not isinstance(response, dict) or response.get("product_id") != product_id:
        raise ExchangeFailure(ErrorKind.BAD_RESPONSE, f"response is not product {product_id}")
    price = response.get("price")
    if price == "":
        return None
    number = _amount(price, f"{product_id}.price")
    return None if number == 0 else number


class _Coinbase(ccxt_async.coinbase):  # type: ignore[misc]
    """ccxt's Coinbase client with our HTTP classification ahead of ccxt's body-shape mapping."""

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: dict[str, str],
        body: str,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> None:
        failure = classify_http(code, headers or {}, body)
        if failure is not None:
            raise failure


class CoinbaseClient:
    """One Coinbase Advanced Trade account reached through one long-lived ccxt client."""

    def __init__(
        self,
        *,
        account: ExchangeAccount,
        key_name: str,
        private_key: str,
        api_url: str,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.account = account
        self._timeout = timeout
        self._blocked_until = 0.0
        self._ccxt = _Coinbase(
            {
                "apiKey": key_name,
                "secret": private_key,
                "timeout": int(timeout * 1000),
                "enableRateLimit": True,
                "options": {"fetchBalance": FETCH_BALANCE_METHOD},
            }
        )
        self._ccxt.urls = {**self._ccxt.urls, "api": {"rest": api_url.rstrip("/")}}
        if ssl_context is not None:
            # ccxt otherwise loads the CA bundle for each client: ~35 ms of event-loop time.
            self._ccxt.ssl_context = ssl_context
        # fetch_balance() loads markets first when `markets is None`: six public endpoints
        # (products, currencies, ...) that balances do not need. An empty market table skips
        # that load deliberately; asset codes come straight from the accounts response.
        self._ccxt.set_markets([], {})
        # ccxt sleeps this long on close() for TLS teardown; loopback and pooled clients close
        # together at shutdown, so keep the sleep short.
        self._ccxt.timeout_on_exit = 50

    async def fetch_balances(self) -> dict[str, ExchangeBalance]:
        """Fetch every page of the account's balances within the timeout."""
        wait = self._blocked_until - time.monotonic()
        if wait > 0:
            raise ExchangeFailure(
                ErrorKind.RATE_LIMITED,
                f"exchange asked to wait; retry after {wait:.1f}s",
                retry_after=wait,
            )
        params = {"retail_portfolio_id": self.account.account_ref}
        try:
            balance = await _bounded(self._ccxt.fetch_balance(params), self._timeout)
        except ExchangeFailure as failure:
            if failure.retry_after is not None:
                self._blocked_until = time.monotonic() + failure.retry_after
            raise
        return parse_accounts(balance.get("info") if isinstance(balance, dict) else None)

    async def close(self) -> None:
        """Release the client's HTTP session."""
        await self._ccxt.close()

    @property
    def is_open(self) -> bool:
        """Tell whether the client holds an HTTP session."""
        return self._ccxt.session is not None


class CoinbaseMarket:
    """Coinbase Advanced Trade's public market data through one long-lived ccxt client."""

    def __init__(
        self, *, api_url: str, timeout: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._timeout = timeout
        self._blocked_until = 0.0
        self._ccxt = _Coinbase({"timeout": int(timeout * 1000), "enableRateLimit": True})
        self._ccxt.urls = {**self._ccxt.urls, "api": {"rest": api_url.rstrip("/")}}
        if ssl_context is not None:
            self._ccxt.ssl_context = ssl_context
        self._ccxt.timeout_on_exit = 50

    async def fetch_price(self, product_id: str) -> Decimal | None:
        """Return a product's current price within the timeout; None when it is not listed."""
        wait = self._blocked_until - time.monotonic()
        if wait > 0:
            raise ExchangeFailure(
                ErrorKind.RATE_LIMITED,
                f"exchange asked to wait; retry after {wait:.1f}s",
                retry_after=wait,
            )
        call = getattr(self._ccxt, FETCH_PRODUCT_METHOD)
        try:
            product = await _bounded(call({"product_id": product_id}), self._timeout)
        except ExchangeFailure as failure:
            if failure.http_status == 404:
                return None
            if failure.retry_after is not None:
                self._blocked_until = time.monotonic() + failure.retry_after
            raise
        return parse_price(product, product_id)

    async def close(self) -> None:
        """Release the client's HTTP session."""
        await self._ccxt.close()
