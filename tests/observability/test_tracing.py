"""Traces on the real services, in their own processes: with OTEL_EXPORTER_OTLP_ENDPOINT set, the
spans of one CheckOrder link the live service's call to the wallet service's handling of it, down
to its database statements. The collector is a test receiver speaking OTLP's real TraceService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.services import service_process
from tapedeck.live.v1 import live_pb2_grpc
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc
from tests.live.test_check_order import order
from tests.support import eventually


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    async def Export(self, request, context):
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend(
                    Span(
                        service=attributes["service.name"],
                        name=span.name,
                        trace_id=span.trace_id,
                        span_id=span.span_id,
                        parent_span_id=span.parent_span_id,
                    )
                    for span in scope.spans
                )
        return trace_service_pb2.ExportTraceServiceResponse()


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    collector = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield collector, port
    finally:
        await server.stop(0)


async def test_the_spans_of_one_check_order_link_the_live_and_wallet_services(tmp_path):
    async with receiver() as (collector, collector_port):
        tracing = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        async with (
            service_process(
                "tapedeck_wallets",
                prefix="WALLETS_",
                directory=tmp_path / "wallets",
                env={**tracing, "WALLETS_LIVE_ADDRESS": ""},
            ) as (wallets_port, _),
            service_process(
                "tapedeck_live",
                prefix="LIVE_",
                directory=tmp_path / "live",
                env={**tracing, "LIVE_WALLETS_ADDRESS": f"127.0.0.1:{wallets_port}"},
            ) as (live_port, _),
            grpc.aio.insecure_channel(f"127.0.0.1:{wallets_port}") as wallets_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{live_port}") as live_channel,
        ):
            wallets = wallets_pb2_grpc.WalletServiceStub(wallets_channel)
            created = await wallets.CreateWallet(
                wallets_pb2.CreateWalletRequest(
                    wallet=wallets_pb2.Wallet(
                        display_name="desk",
                        exchange="coinbase",
                        account_ref="acct-desk",
                        credentials_ref="COINBASE_TEST_KEY",
                    )
                )
            )
            await wallets.SetBalances(
                wallets_pb2.SetBalancesRequest(
                    name=created.wallet.name,
                    balances=[
                        wallets_pb2.Balance(asset="USD", total="10000", available="10000", hold="0")
                    ],
                )
            )
            live = live_pb2_grpc.LiveServiceStub(live_channel)
            reply = await live.CheckOrder(order(wallet=created.wallet.name))
            assert reply.allowed

            def named(service: str, suffix: str) -> list[Span]:
                return [
                    s for s in collector.spans if s.service == service and s.name.endswith(suffix)
                ]

            async def exported() -> bool:
                return bool(named("tapedeck-wallets", "WalletService/GetWallet")) and bool(
                    named("tapedeck-live", "LiveService/CheckOrder")
                )

            await eventually(exported, timeout=30, message="both services exported their spans")

    [check] = named("tapedeck-live", "LiveService/CheckOrder")
    [call] = named("tapedeck-live", "WalletService/GetWallet")
    [served] = named("tapedeck-wallets", "WalletService/GetWallet")
    assert call.trace_id == check.trace_id == served.trace_id
    assert call.parent_span_id == check.span_id
    assert served.parent_span_id == call.span_id
    statements = [
        s
        for s in collector.spans
        if s.service == "tapedeck-wallets" and s.parent_span_id == served.span_id
    ]
    assert statements, "the wallet service's database statements are spans of its call"
    assert all(s.name.endswith(" sqlite") for s in statements)
