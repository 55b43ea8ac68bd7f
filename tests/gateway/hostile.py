"""Generated hostile requests for every RPC of the contract, sent through the gateway.

Requests are built from the descriptors, so a new RPC or field is covered without a change here:
well-formed but odd values, edge numbers, oversized strings and repeated fields, raw bytes that
do not decode, and the same request sent several times at once. Beside them run well-formed
calls and one open SubscribeEvents stream; any of those failing is collateral damage, the one
thing a hostile caller must never cause. The test suite sends a few hundred (seeded);
`bench/hostile` sends thousands per service.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

import grpc
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from tapedeck.backtest.v1 import backtest_pb2
from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck.wallets.v1 import wallets_pb2, wallets_pb2_grpc

CONTRACT: dict[str, ModuleType] = {
    "backtest": backtest_pb2,
    "wallets": wallets_pb2,
    "live": live_pb2,
}
# A status these say nothing but "we have a bug" (or a call that never ends): always a failure.
FORBIDDEN = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
UNARY_DEADLINE = 30.0
STREAM_LOOK = 1.5
OVERSIZED_BYTES = 5 * 1024 * 1024

_STRINGS = (
    "",
    "x",
    "wallets/w1",
    "backtests/b1",
    "datasets/d1",
    "1E+999999999",
    "1E+99999999",
    "1e999",
    "-0.000000000000000000001",
    "NaN",
    "99999999999999999999999999999999999999999",
    "\x00",
    "\U0001f642" * 20,
    "../../../../etc/passwd",
    "a" * 70_000,
    "wallets/" + "a" * 70_000,
)
_INTS = (0, 1, -1, 2**31 - 1, -(2**31), 2**53, 2**63 - 1, -(2**63))
_DOUBLES = (0.0, -1.0, 1e308, float("inf"), float("nan"), 5e-324)


def methods(service: str) -> list[MethodDescriptor]:
    """Return the RPCs of one service of the contract."""
    (described,) = CONTRACT[service].DESCRIPTOR.services_by_name.values()
    return list(described.methods)


def _int_for(kind: int, rng: random.Random) -> int:
    value = rng.choice(_INTS)
    if kind in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return max(-(2**31), min(2**31 - 1, value))
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return max(0, min(2**32 - 1, value))
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return max(0, value)
    return value


def _scalar(spec: FieldDescriptor, rng: random.Random) -> object:
    kind = spec.type
    if kind == FieldDescriptor.TYPE_STRING:
        return rng.choice(_STRINGS)
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice((0, 8, 1024)))
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = rng.choice(_DOUBLES)
        return value if kind == FieldDescriptor.TYPE_DOUBLE else max(-3e38, min(3e38, value))
    if kind == FieldDescriptor.TYPE_ENUM:
        assert spec.enum_type is not None
        numbers = [v.number for v in spec.enum_type.values]
        return rng.choice([*numbers, 999, -1])
    return _int_for(kind, rng)


def fill(message: Message, rng: random.Random, depth: int = 0) -> Message:
    """Set a random subset of a message's fields to edge values, recursively."""
    for spec in message.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        if spec.message_type is not None and spec.message_type.GetOptions().map_entry:
            target = getattr(message, spec.name)
            key_spec = spec.message_type.fields_by_name["key"]
            value_spec = spec.message_type.fields_by_name["value"]
            for _ in range(rng.choice((1, 2, 3))):
                key = _scalar(key_spec, rng)
                if value_spec.message_type is not None:
                    if depth < 3:
                        fill(target[key], rng, depth + 1)
                else:
                    target[key] = _scalar(value_spec, rng)
            continue
        count = rng.choice((1, 1, 2, 3, 10_001)) if spec.is_repeated else 1
        if spec.message_type is not None:
            if depth >= 3:
                continue
            for _ in range(min(count, 3) if spec.message_type.fields else count):
                target = (
                    getattr(message, spec.name).add()
                    if spec.is_repeated
                    else getattr(message, spec.name)
                )
                fill(target, rng, depth + 1)
                if not spec.is_repeated:
                    target.SetInParent()
            continue
        if spec.is_repeated:
            getattr(message, spec.name).extend(_scalar(spec, rng) for _ in range(count))
        else:
            setattr(message, spec.name, _scalar(spec, rng))
    return message


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def raw_bodies(method: MethodDescriptor, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Yield (kind, body) requests that are not valid encodings of the method's input."""
    yield "random bytes", rng.randbytes(rng.choice((1, 7, 64, 512)))
    encoded = fill(GetMessageClass(method.input_type)(), rng).SerializeToString()
    if len(encoded) > 1:
        yield "truncated", encoded[:-1]
    strings = [f for f in method.input_type.fields if f.type == FieldDescriptor.TYPE_STRING]
    if strings:
        tag = _varint(strings[0].number << 3 | 2)
        yield "bad utf-8", tag + _varint(3) + b"\xff\xfe\xfd"
    # 200 nested groups in an unknown field: past the decoder's recursion limit.
    yield "nesting too deep", _varint(9999 << 3 | 3) * 200
    yield "wrong wire type", _varint(1 << 3 | 5) + struct.pack("<I", 7) + b"\x0a\xff"


@dataclass(frozen=True)
class Case:
    """One generated request: what kind, for which RPC, and its encoded body."""

    kind: str
    method: str
    streaming: bool
    body: bytes
    copies: int = 1
    token: bool = True


def cases(service: str, rng: random.Random, count: int) -> Iterator[Case]:
    """Yield `count` generated requests over every RPC of one service, cycling through kinds."""
    described = methods(service)
    made = 0
    while made < count:
        for method in described:
            path = f"/{method.containing_service.full_name}/{method.name}"
            streaming = method.server_streaming
            message_class = GetMessageClass(method.input_type)
            pick = rng.random()
            if pick < 0.45:
                body = fill(message_class(), rng).SerializeToString()
                yield Case("generated", path, streaming, body)
            elif pick < 0.55:
                yield Case("empty", path, streaming, b"")
            elif pick < 0.65:
                body = fill(message_class(), rng).SerializeToString()
                yield Case("concurrent duplicates", path, streaming, body, copies=4)
            elif pick < 0.70:
                strings = [
                    f for f in method.input_type.fields if f.type == FieldDescriptor.TYPE_STRING
                ]
                if strings:
                    tag = _varint(strings[0].number << 3 | 2)
                    body = tag + _varint(OVERSIZED_BYTES) + b"a" * OVERSIZED_BYTES
                    yield Case("oversized", path, streaming, body)
                else:
                    yield Case("empty", path, streaming, b"")
            elif pick < 0.75:
                kind, body = next(raw_bodies(method, rng))
                yield Case("no token, " + kind, path, streaming, body, token=False)
            else:
                bodies = list(raw_bodies(method, rng))
                kind, body = rng.choice(bodies)
                yield Case(kind, path, streaming, body)
            made += 1
            if made >= count:
                return


@dataclass
class Outcome:
    """What a run of generated requests got back."""

    codes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    collateral: list[str] = field(default_factory=list)
    sent: int = 0


async def _send(
    channel: grpc.aio.Channel, case: Case, metadata: tuple[tuple[str, str], ...]
) -> str:
    sent_metadata = metadata if case.token else ()
    if case.streaming:
        call = channel.unary_stream(case.method)(case.body, metadata=sent_metadata)
        try:
            await asyncio.wait_for(call.read(), STREAM_LOOK)
        except TimeoutError:
            call.cancel()
            return "OPEN"
        except grpc.aio.AioRpcError as error:
            return error.code().name
        if call.done():
            return (await call.code()).name
        call.cancel()
        return "OK"
    try:
        await channel.unary_unary(case.method)(
            case.body, metadata=sent_metadata, timeout=UNARY_DEADLINE
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "HANG"
        return error.code().name
    return "OK"


async def _watch_stream(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], outcome: Outcome
) -> None:
    stub = live_pb2_grpc.LiveServiceStub(channel)
    call = stub.SubscribeEvents(live_pb2.SubscribeEventsRequest(), metadata=metadata)
    try:
        async for _ in call:
            pass
        outcome.collateral.append("SubscribeEvents ended by the server")
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            outcome.collateral.append(f"SubscribeEvents: {error.code().name} {error.details()}")


async def _well_formed(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], wallet: str, outcome: Outcome
) -> None:
    stub = wallets_pb2_grpc.WalletServiceStub(channel)
    live = live_pb2_grpc.LiveServiceStub(channel)
    try:
        await stub.GetWallet(
            wallets_pb2.GetWalletRequest(name=wallet), metadata=metadata, timeout=30
        )
        await live.ListEvents(
            live_pb2.ListEventsRequest(page_size=5), metadata=metadata, timeout=30
        )
    except grpc.aio.AioRpcError as error:
        outcome.collateral.append(f"well-formed call: {error.code().name} {error.details()}")


async def run(
    address: str, token: str, *, services: tuple[str, ...], per_service: int, seed: int
) -> Outcome:
    """Send `per_service` generated requests to each service beside well-formed calls."""
    rng = random.Random(seed)
    metadata = (("authorization", f"Bearer {token}"),)
    outcome = Outcome()
    # One connection for everything, as a browser behind the gateway shares one: a reply that
    # resets it would fail the well-formed calls and the stream as well.
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 2 * OVERSIZED_BYTES)]
    ) as channel:
        created = await wallets_pb2_grpc.WalletServiceStub(channel).CreateWallet(
            wallets_pb2.CreateWalletRequest(
                wallet=wallets_pb2.Wallet(
                    display_name="canary",
                    exchange="coinbase",
                    account_ref="canary",
                    credentials_ref="CANARY",
                )
            ),
            metadata=metadata,
            timeout=30,
        )
        watcher = asyncio.create_task(_watch_stream(channel, metadata, outcome))
        for service in services:
            batch: list[Case] = []
            for case in cases(service, rng, per_service):
                batch.append(case)
                if len(batch) == 8:
                    await _run_batch(channel, batch, metadata, created.wallet.name, outcome)
                    batch = []
            await _run_batch(channel, batch, metadata, created.wallet.name, outcome)
        if watcher.done():
            await watcher
        else:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    return outcome


async def _run_batch(
    channel: grpc.aio.Channel,
    batch: list[Case],
    metadata: tuple[tuple[str, str], ...],
    wallet: str,
    outcome: Outcome,
) -> None:
    calls = [(case, _send(channel, case, metadata)) for case in batch for _ in range(case.copies)]
    results = await asyncio.gather(
        *(call for _, call in calls), _well_formed(channel, metadata, wallet, outcome)
    )
    for (case, _), code in zip(calls, results, strict=False):
        outcome.sent += 1
        outcome.codes[code] += 1
        # UNAVAILABLE too: nothing is down here, so it would mean a reset connection.
        if code in ("HANG", "UNAVAILABLE", *(c.name for c in FORBIDDEN)):
            outcome.failures.append(f"{case.method} ({case.kind}): {code}")
