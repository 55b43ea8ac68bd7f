"""The emulator's HTTP server: Coinbase's accounts and public product endpoints, plus faults."""

from __future__ import annotations

import asyncio
import base64
import enum
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from tapedeck_dev.emulator.keys import CdpKey, generate_key

ACCOUNTS_PATH = "/api/v3/brokerage/accounts"
PRODUCT_PATH = "/api/v3/brokerage/market/products/{product_id}"
_AUDIENCE = "retail_rest_api_proxy"
_ISSUER = "coinbase-cloud"
_DEFAULT_LIMIT = 49
_MAX_LIMIT = 250


class FaultKind(enum.StrEnum):
    """What the emulator does instead of (or before) answering."""

    LATENCY = "latency"
    SERVER_ERROR = "server_error"
    RATE_LIMIT = "rate_limit"
    MALFORMED = "malformed"
    EMPTY = "empty"
    HANG = "hang"
    DROP = "drop"


@dataclass
class Fault:
    """An injected fault; `times` limits it to the next N requests (None: until cleared)."""

    kind: FaultKind
    seconds: float = 0.0  # latency, or the Retry-After of a rate limit
    status: int = 503  # for SERVER_ERROR
    times: int | None = None


@dataclass
class _Portfolio:
    key: CdpKey
    public_key: ec.EllipticCurvePublicKey
    balances: dict[str, tuple[str, str]]
    created: str


class CoinbaseEmulator:
    """An in-process Coinbase Advanced Trade accounts endpoint on 127.0.0.1."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._portfolios: dict[str, _Portfolio] = {}
        self._by_key: dict[str, str] = {}
        self._latency: dict[str | None, float] = {}
        self._faults: dict[str | None, Fault] = {}
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._prices: dict[str, str] = {}
        self.requests: Counter[str] = Counter()  # authenticated requests per portfolio
        self.product_requests: Counter[str] = Counter()  # public product requests per product
        self.first_pages: Counter[str] = Counter()  # fetches: requests without a cursor
        self.rejected = 0  # requests refused for their credentials
        self.hanging = 0  # requests currently held open by a HANG fault
        self.port = 0

    # --- set-up ---------------------------------------------------------------------------

    def add_portfolio(
        self,
        balances: dict[str, tuple[str, str]] | None = None,
        *,
        portfolio_id: str | None = None,
        key: CdpKey | None = None,
    ) -> tuple[str, CdpKey]:
        """Create a portfolio with {asset: (available, hold)} balances; return its id and key."""
        pid = portfolio_id or str(uuid.uuid4())
        key = key or generate_key()
        self._portfolios[pid] = _Portfolio(
            key=key,
            public_key=key.public_key(),
            balances=dict(balances or {}),
            created=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        self._by_key[key.name] = pid
        return pid, key

    def revoke_key(self, key_name: str) -> None:
        """Forget a key: requests signed with it are refused from now on."""
        self._by_key.pop(key_name, None)

    def set_balances(self, portfolio_id: str, balances: dict[str, tuple[str, str]]) -> None:
        """Replace a portfolio's balances."""
        self._portfolios[portfolio_id].balances = dict(balances)

    def set_prices(self, prices: Mapping[str, str | None]) -> None:
        """Set products' prices ("BTC-USD": "64250.5"); None delists a product."""
        for product_id, price in prices.items():
            if price is None:
                self._prices.pop(product_id, None)
            else:
                self._prices[product_id] = price

    @property
    def prices(self) -> dict[str, str]:
        """Return the listed products' prices."""
        return dict(self._prices)

    def inject(self, fault: Fault, *, portfolio: str | None = None) -> None:
        """Inject a fault for one portfolio or, without one, for every request."""
        if fault.kind is FaultKind.LATENCY:
            self._latency[portfolio] = fault.seconds
        else:
            self._faults[portfolio] = fault

    def clear_faults(self) -> None:
        """Remove every fault and latency, and release hung requests."""
        self._latency.clear()
        self._faults.clear()
        self._released.set()
        self._released = asyncio.Event()

    @property
    def base_url(self) -> str:
        """Return the URL clients point their REST base at."""
        return f"http://{self._host}:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> CoinbaseEmulator:
        """Listen on the configured port (0 picks a free one)."""
        app = web.Application()
        app.router.add_get(ACCOUNTS_PATH, self._accounts)
        app.router.add_get(PRODUCT_PATH, self._product)
        app.router.add_get("/_emulator/state", self._state)
        app.router.add_post("/_emulator/faults", self._add_fault)
        app.router.add_delete("/_emulator/faults", self._clear_faults)
        app.router.add_put("/_emulator/portfolios/{portfolio}/balances", self._put_balances)
        app.router.add_put("/_emulator/prices", self._put_prices)
        # Handlers are cancelled when the client goes away, so a hung request ends with it.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        """Release hung requests and stop listening."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the Coinbase endpoint ------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> str | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or token == "":
            return _unauthorized("missing bearer JWT")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            pid = self._by_key.get(kid) if isinstance(kid, str) else None
            if pid is None:
                return _unauthorized("unknown key")
            claims = jwt.decode(
                token,
                self._portfolios[pid].public_key,
                algorithms=["ES256"],
                audience=_AUDIENCE,
                issuer=_ISSUER,
                leeway=5,
                options={"require": ["exp", "nbf", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            return _unauthorized(f"invalid JWT: {type(error).__name__}")
        if claims.get("sub") != kid:
            return _unauthorized("sub does not match kid")
        # Coinbase binds the token to "METHOD host/path". ccxt strips only "https://" from the
        # URL, so over plain-HTTP loopback the claim carries "http://"; accept either form.
        uri = str(claims.get("uri", "")).replace("http://", "", 1)
        if uri != f"{request.method} {request.host}{request.path}":
            return _unauthorized("uri claim does not match the request")
        requested = request.query.get("retail_portfolio_id")
        if requested not in (None, "", pid):
            return web.json_response(
                {"error": "PERMISSION_DENIED", "message": "key has no access to the portfolio"},
                status=403,
            )
        return pid

    def _take_fault(self, pid: str) -> Fault | None:
        scope: str | None = pid if pid in self._faults else None
        fault = self._faults.get(scope)
        if fault is None:
            return None
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                del self._faults[scope]
        return fault

    async def _accounts(self, request: web.Request) -> web.StreamResponse:
        outcome = self._authenticate(request)
        if isinstance(outcome, web.Response):
            self.rejected += 1
            return outcome
        pid = outcome
        self.requests[pid] += 1
        if request.query.get("cursor", "") == "":
            self.first_pages[pid] += 1
        delay = self._latency.get(pid, self._latency.get(None, 0.0))
        if delay > 0:
            await asyncio.sleep(delay)
        fault = self._take_fault(pid)
        if fault is not None:
            return await self._fail(request, fault)
        return web.json_response(self._page(pid, request))

    async def _product(self, request: web.Request) -> web.StreamResponse:
        # Public market data: no credentials; only faults and latency for every request apply.
        product_id = request.match_info["product_id"]
        self.product_requests[product_id] += 1
        delay = self._latency.get(None, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = self._take_fault("")
        if fault is not None:
            return await self._fail(request, fault)
        price = self._prices.get(product_id)
        if price is None:
            return web.json_response(
                {"error": "NOT_FOUND", "message": "ProductNotFound", "details": []}, status=404
            )
        base, _, quote = product_id.partition("-")
        return web.json_response(
            {
                "product_id": product_id,
                "price": price,
                "price_percentage_change_24h": "0",
                "volume_24h": "0",
                "base_currency_id": base,
                "quote_currency_id": quote,
                "base_display_symbol": base,
                "quote_display_symbol": quote,
                "status": "online",
                "trading_disabled": False,
                "is_disabled": False,
                "product_type": "SPOT",
            }
        )

    async def _fail(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind is FaultKind.SERVER_ERROR:
            return web.json_response(
                {"error": "INTERNAL", "message": "emulated server error"}, status=fault.status
            )
        if fault.kind is FaultKind.RATE_LIMIT:
            return web.json_response(
                {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"},
                status=429,
                headers={"Retry-After": f"{fault.seconds:g}"},
            )
        if fault.kind is FaultKind.MALFORMED:
            return web.Response(
                text='{"accounts": [{"uuid": "8bfc20d7", "currency": "BTC", "available_bal',
                content_type="application/json",
            )
        if fault.kind is FaultKind.EMPTY:
            return web.Response(body=b"", content_type="application/json")
        if fault.kind is FaultKind.HANG:
            self.hanging += 1
            try:
                await self._released.wait()
            finally:
                self.hanging -= 1
            return web.json_response({"error": "INTERNAL", "message": "released"}, status=503)
        # DROP: close the connection without answering.
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPInternalServerError()

    def _page(self, pid: str, request: web.Request) -> dict[str, Any]:
        portfolio = self._portfolios[pid]
        try:
            limit = min(max(int(request.query.get("limit", _DEFAULT_LIMIT)), 1), _MAX_LIMIT)
            cursor = request.query.get("cursor", "")
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except ValueError:
            raise web.HTTPBadRequest(text='{"error":"INVALID_ARGUMENT"}') from None
        assets = sorted(portfolio.balances)
        chunk = assets[start : start + limit]
        has_next = start + limit < len(assets)
        accounts = []
        for asset in chunk:
            available, hold = portfolio.balances[asset]
            accounts.append(
                {
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pid}/{asset}")),
                    "name": f"{asset} Wallet",
                    "currency": asset,
                    "available_balance": {"value": available, "currency": asset},
                    "default": True,
                    "active": True,
                    "created_at": portfolio.created,
                    "updated_at": portfolio.created,
                    "deleted_at": None,
                    "type": "ACCOUNT_TYPE_FIAT"
                    if asset in ("USD", "EUR")
                    else "ACCOUNT_TYPE_CRYPTO",
                    "ready": True,
                    "hold": {"value": hold, "currency": asset},
                    "retail_portfolio_id": pid,
                    "platform": "ACCOUNT_PLATFORM_CONSUMER",
                }
            )
        next_cursor = (
            base64.urlsafe_b64encode(str(start + limit).encode()).decode() if has_next else ""
        )
        return {
            "accounts": accounts,
            "has_next": has_next,
            "cursor": next_cursor,
            "size": len(chunk),
        }

    # --- the control API, for driving the emulator by hand ---------------------------------

    async def _state(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "portfolios": {
                    pid: {"key_name": p.key.name, "balances": p.balances}
                    for pid, p in self._portfolios.items()
                },
                "prices": self.prices,
                "requests": dict(self.requests),
                "product_requests": dict(self.product_requests),
                "rejected": self.rejected,
                "latency": {str(k): v for k, v in self._latency.items()},
                "faults": {
                    str(k): {**asdict(f), "kind": f.kind.value} for k, f in self._faults.items()
                },
            }
        )

    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            fault = Fault(
                kind=FaultKind(body["kind"]),
                seconds=float(body.get("seconds", 0)),
                status=int(body.get("status", 503)),
                times=None if body.get("times") is None else int(body["times"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        self.inject(fault, portfolio=body.get("portfolio"))
        return web.json_response({"ok": True})

    async def _clear_faults(self, _request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})

    async def _put_balances(self, request: web.Request) -> web.Response:
        pid = request.match_info["portfolio"]
        if pid not in self._portfolios:
            return web.json_response({"error": "no such portfolio"}, status=404)
        body = await request.json()
        self.set_balances(
            pid, {asset: (v["available"], v.get("hold", "0")) for asset, v in body.items()}
        )
        return web.json_response({"ok": True})

    async def _put_prices(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not all(
            isinstance(price, str | None) for price in body.values()
        ):
            return web.json_response({"error": "expected {product_id: price or null}"}, status=400)
        self.set_prices(body)
        return web.json_response({"ok": True})


def _unauthorized(reason: str) -> web.Response:
    return web.json_response({"error": "UNAUTHENTICATED", "message": reason}, status=401)
