"""The real stack through the launcher and Envoy: grpcurl, health, gRPC-web, the page, shutdown."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from tests.gateway.stack import BIN, Stack, alive, descendants, start_stack

SERVICES = (
    "tapedeck.backtest.v1.BacktestService",
    "tapedeck.wallets.v1.WalletService",
    "tapedeck.live.v1.LiveService",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("launcher"))
    yield running
    running.stop()


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "grpcurl"), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )


def test_grpcurl_lists_every_service_through_the_gateway(stack: Stack) -> None:
    listed = grpcurl(stack.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {*SERVICES, "tapedeck.gateway.v1.GatewayService"} <= set(listed.stdout.split())


def test_grpcurl_describe_shows_the_contract_comments(stack: Stack) -> None:
    described = grpcurl(stack.address, "describe", "tapedeck.wallets.v1.WalletService.GetWallet")
    assert described.returncode == 0, described.stderr
    assert "// Returns one wallet with its balances." in described.stdout
    assert "ROLE_VIEWER" in described.stdout


@pytest.mark.parametrize("service", ["", *SERVICES])
def test_health_is_serving_over_native_grpc(stack: Stack, service: str) -> None:
    checked = grpcurl(
        "-d", f'{{"service": "{service}"}}', stack.address, "grpc.health.v1.Health/Check"
    )
    assert checked.returncode == 0, checked.stderr
    assert '"status": "SERVING"' in checked.stdout


def grpc_web_call(address: str, path: str, message: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST one gRPC-web frame over HTTP/1.1, as a browser does; return status, trailers, message."""
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = b"\x00" + struct.pack(">I", len(message)) + message
    connection.request(
        "POST",
        path,
        body=body,
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "te": "trailers"},
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    reply, trailers = b"", {}
    offset = 0
    while offset < len(payload):
        flag, length = payload[offset], struct.unpack(">I", payload[offset + 1 : offset + 5])[0]
        frame = payload[offset + 5 : offset + 5 + length]
        if flag & 0x80:
            for line in frame.decode().strip().split("\r\n"):
                key, _, value = line.partition(":")
                trailers[key.strip().lower()] = value.strip()
        else:
            reply = frame
        offset += 5 + length
    for key in ("grpc-status", "grpc-message"):
        if key in response.headers:
            trailers.setdefault(key, response.headers[key])
    return response.status, trailers, reply


@pytest.mark.parametrize("service", ["", *SERVICES])
def test_health_is_serving_over_grpc_web(stack: Stack, service: str) -> None:
    request = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    status, trailers, reply = grpc_web_call(stack.address, "/grpc.health.v1.Health/Check", request)
    assert status == 200
    assert trailers.get("grpc-status") == "0", trailers
    assert (
        health_pb2.HealthCheckResponse.FromString(reply).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_rpcs_need_a_token_through_the_gateway(stack: Stack) -> None:
    denied = grpcurl("-d", "{}", stack.address, "tapedeck.live.v1.LiveService/ListEvents")
    assert "Unauthenticated" in denied.stderr
    allowed = grpcurl(
        "-H",
        f"authorization: Bearer {stack.admin_token()}",
        "-d",
        "{}",
        stack.address,
        "tapedeck.live.v1.LiveService/ListEvents",
    )
    assert "Unauthenticated" not in allowed.stderr
    assert "PermissionDenied" not in allowed.stderr


@pytest.mark.parametrize("name", ["admin", "operator", "viewer"])
def test_who_am_i_names_the_token_and_its_role_through_the_gateway(stack: Stack, name: str) -> None:
    tokens = json.loads((stack.data_dir / "tokens.json").read_text())["tokens"]
    token = next(entry["token"] for entry in tokens if entry["name"] == name)
    answered = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        stack.address,
        "tapedeck.gateway.v1.GatewayService/WhoAmI",
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout) == {"name": name, "role": f"ROLE_{name.upper()}"}


def test_who_am_i_refuses_an_unknown_or_missing_token(stack: Stack) -> None:
    method = "tapedeck.gateway.v1.GatewayService/WhoAmI"
    unknown = grpcurl(
        "-H", "authorization: Bearer not-a-token-of-this-stack", stack.address, method
    )
    assert "Unauthenticated" in unknown.stderr
    assert "unknown bearer token" in unknown.stderr
    missing = grpcurl(stack.address, method)
    assert "Unauthenticated" in missing.stderr


def test_the_page_is_served_compressed_from_the_same_origin(stack: Stack) -> None:
    host, port = stack.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/", headers={"accept-encoding": "gzip"})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    if response.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    else:
        assert len(body) < 256, "pages above 256 bytes must be gzip-compressed"
    assert b"<html" in body.lower() or b"<!doctype html" in body.lower()


def test_a_child_that_dies_is_reported_and_restarted(stack: Stack) -> None:
    children = descendants(stack.process.pid)
    wallets = [
        pid for pid in children if b"tapedeck_wallets" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(wallets) == 1
    os.kill(wallets[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "wallets exited with code -9" not in stack.log():
        assert time.monotonic() < deadline, stack.log()
        time.sleep(0.2)
    while True:
        checked = grpcurl(
            "-d",
            '{"service": "tapedeck.wallets.v1.WalletService"}',
            stack.address,
            "grpc.health.v1.Health/Check",
        )
        if '"status": "SERVING"' in checked.stdout:
            break
        assert time.monotonic() < deadline, stack.log()
        time.sleep(0.5)


def test_sigterm_stops_every_child_and_leaves_no_process(tmp_path: Path) -> None:
    running = start_stack(tmp_path)
    children = descendants(running.process.pid)
    assert len(children) >= 5
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
    assert "stopped" in running.log()


def test_the_launcher_dying_takes_its_children_with_it(tmp_path: Path) -> None:
    running = start_stack(tmp_path)
    children = descendants(running.process.pid)
    running.process.kill()
    running.process.wait()
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
