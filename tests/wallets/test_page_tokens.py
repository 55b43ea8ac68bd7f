"""ListWallets and ListReconciliations take back only the page tokens this deployment issued."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from tapedeck.wallets.v1 import wallets_pb2
from tests.support import field_violations
from tests.wallets.harness import Service, running_service


async def _issued(svc: Service) -> tuple[str, str]:
    """Return the first pages' tokens of ListWallets and ListReconciliations (two of each)."""
    for name in ("a", "b"):
        await svc.create_wallet(name)
    for _ in range(2):
        await svc.finished((await svc.reconcile([])).name)
    wallets = await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest(page_size=1))
    reports = await svc.stub.ListReconciliations(
        wallets_pb2.ListReconciliationsRequest(page_size=1)
    )
    assert wallets.next_page_token
    assert reports.next_page_token
    return wallets.next_page_token, reports.next_page_token


def _altered(token: str) -> str:
    # The same signature over a body that resumes somewhere else.
    body, mac = token.split(".")
    document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    document["p"][-1] = "0" if isinstance(document["p"][-1], str) else 0
    forged = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    return f"{forged}.{mac}"


async def _refused(svc: Service, method: str, token: str, **fields: object) -> str:
    if method == "ListWallets":
        call = svc.stub.ListWallets(
            wallets_pb2.ListWalletsRequest(page_size=1, page_token=token, **fields)
        )
    else:
        call = svc.stub.ListReconciliations(
            wallets_pb2.ListReconciliationsRequest(page_size=1, page_token=token, **fields)
        )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    violations = field_violations(caught.value)
    assert list(violations) == ["page_token"]
    return violations["page_token"]


async def test_forged_truncated_and_altered_tokens_are_invalid_arguments(service):
    async with service() as svc:
        wallets_token, reports_token = await _issued(svc)
        for method, token in (
            ("ListWallets", wallets_token),
            ("ListReconciliations", reports_token),
        ):
            forged = base64.urlsafe_b64encode(b'{"q":"x","p":["a","b"]}').decode() + ".AAAA"
            for bad in (forged, "garbage", token[: len(token) // 2], token[:-2], _altered(token)):
                assert await _refused(svc, method, bad) == "is not a token this service issued"
            # The real token still works: refusing the others changed nothing.
            assert await svc.stub.ListWallets(
                wallets_pb2.ListWalletsRequest(page_size=1, page_token=wallets_token)
            )


async def test_a_token_of_another_request_is_an_invalid_argument(service):
    async with service() as svc:
        wallets_token, reports_token = await _issued(svc)
        # Another method's token, and a token of the same method with another filter.
        other_request = "was issued for a different request; start from the first page"
        assert await _refused(svc, "ListReconciliations", wallets_token) == other_request
        assert await _refused(svc, "ListWallets", reports_token) == other_request
        assert await _refused(svc, "ListWallets", wallets_token, exchange="coinbase") == (
            other_request
        )
        later = wallets_pb2.ListReconciliationsRequest().time_range
        later.start_time.seconds = 1
        assert await _refused(svc, "ListReconciliations", reports_token, time_range=later) == (
            other_request
        )


async def test_a_token_of_another_deployment_is_an_invalid_argument(
    database_url, data_dir, tmp_path, exchange
):
    # Without a shared tokens file each service signs with its own key.
    async with (
        running_service(database_url=database_url, data_dir=data_dir, exchange=exchange) as one,
        running_service(database_url=database_url, data_dir=tmp_path, exchange=exchange) as two,
    ):
        wallets_token, reports_token = await _issued(one)
        assert await _refused(two, "ListWallets", wallets_token) == (
            "is not a token this service issued"
        )
        assert await _refused(two, "ListReconciliations", reports_token) == (
            "is not a token this service issued"
        )
