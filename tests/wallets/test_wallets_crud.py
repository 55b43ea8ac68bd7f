"""CreateWallet, GetWallet, ListWallets, DeleteWallet and SetBalances through a real server."""

from __future__ import annotations

import grpc
import pytest

from tapedeck.wallets.v1 import wallets_pb2
from tests.support import field_violations


def _balances(wallet: wallets_pb2.Wallet) -> dict[str, tuple[str, str, str]]:
    return {b.asset: (b.total, b.available, b.hold) for b in wallet.balances}


async def test_wallet_round_trips_with_exact_decimal_balances(service):
    async with service() as svc:
        created = await svc.create_wallet(
            "desk-a",
            balances={"ETH": ("10.123456789012345678", "0"), "BTC": ("1.5", "0.25")},
        )
        assert created.name.startswith("wallets/")
        assert created.create_time.seconds > 0
        fetched = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=created.name))).wallet
    assert fetched == created
    assert _balances(fetched) == {
        "BTC": ("1.75", "1.5", "0.25"),
        "ETH": ("10.123456789012345678", "10.123456789012345678", "0"),
    }
    assert fetched.credentials_ref.startswith("KEY_")


async def test_duplicate_display_name_is_already_exists(service):
    async with service() as svc:
        await svc.create_wallet("desk-a")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.create_wallet("desk-a")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "desk-a" in caught.value.details()


@pytest.mark.parametrize(
    ("wallet", "field"),
    [
        (
            wallets_pb2.Wallet(exchange="coinbase", account_ref="p", credentials_ref="K"),
            "wallet.display_name",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w", exchange="kraken", account_ref="p", credentials_ref="K"
            ),
            "wallet.exchange",
        ),
        (
            wallets_pb2.Wallet(display_name="w", exchange="coinbase", credentials_ref="K"),
            "wallet.account_ref",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w",
                exchange="coinbase",
                account_ref="p",
                credentials_ref="-----BEGIN EC",
            ),
            "wallet.credentials_ref",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w",
                exchange="coinbase",
                account_ref="p",
                credentials_ref="K",
                balances=[wallets_pb2.Balance(asset="BTC", available="1.2.3")],
            ),
            "wallet.balances[0].available",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w",
                exchange="coinbase",
                account_ref="p",
                credentials_ref="K",
                balances=[wallets_pb2.Balance(asset="BTC", available="1", total="3")],
            ),
            "wallet.balances[0].total",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w",
                exchange="coinbase",
                account_ref="p",
                credentials_ref="K",
                balances=[wallets_pb2.Balance(asset="BTC", available="NaN")],
            ),
            "wallet.balances[0].available",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w",
                exchange="coinbase",
                account_ref="p",
                credentials_ref="K",
                balances=[wallets_pb2.Balance(asset="BTC", available="-1")],
            ),
            "wallet.balances[0].available",
        ),
        (
            wallets_pb2.Wallet(
                display_name="w",
                exchange="coinbase",
                account_ref="p",
                credentials_ref="K",
                balances=[
                    wallets_pb2.Balance(asset="BTC", available="1"),
                    wallets_pb2.Balance(asset="BTC", available="2"),
                ],
            ),
            "wallet.balances[1].asset",
        ),
    ],
)
async def test_create_wallet_names_the_bad_field(service, wallet, field):
    async with service() as svc:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.CreateWallet(wallets_pb2.CreateWalletRequest(wallet=wallet))
        listed = await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
    assert list(listed.wallets) == []  # nothing half-written


async def test_missing_wallet_is_not_found_and_bad_names_are_invalid(service):
    async with service() as svc:
        for call, request in [
            (svc.stub.GetWallet, wallets_pb2.GetWalletRequest(name="wallets/nope")),
            (svc.stub.DeleteWallet, wallets_pb2.DeleteWalletRequest(name="wallets/nope")),
            (svc.stub.SetBalances, wallets_pb2.SetBalancesRequest(name="wallets/nope")),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name="desks/1"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(caught.value)


async def test_set_balances_upserts_or_replaces(service):
    async with service() as svc:
        wallet = await svc.create_wallet("desk", balances={"BTC": ("1", "0"), "ETH": ("2", "0")})
        merged = (
            await svc.stub.SetBalances(
                wallets_pb2.SetBalancesRequest(
                    name=wallet.name,
                    balances=[
                        wallets_pb2.Balance(
                            asset="BTC", available="0.5", hold="0.000000000000000001"
                        )
                    ],
                )
            )
        ).wallet
        assert _balances(merged) == {
            "BTC": ("0.500000000000000001", "0.5", "0.000000000000000001"),
            "ETH": ("2", "2", "0"),
        }
        replaced = (
            await svc.stub.SetBalances(
                wallets_pb2.SetBalancesRequest(
                    name=wallet.name,
                    balances=[wallets_pb2.Balance(asset="USD", available="100.10")],
                    replace=True,
                )
            )
        ).wallet
        assert _balances(replaced) == {"USD": ("100.1", "100.1", "0")}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.SetBalances(
                wallets_pb2.SetBalancesRequest(
                    name=wallet.name, balances=[wallets_pb2.Balance(asset="btc", available="1")]
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "balances[0].asset" in field_violations(caught.value)
        assert replaced.update_time.ToNanoseconds() >= wallet.update_time.ToNanoseconds()


async def test_delete_wallet_removes_it_and_its_balances(service):
    async with service() as svc:
        wallet = await svc.create_wallet("desk", balances={"BTC": ("1", "0")})
        await svc.stub.DeleteWallet(wallets_pb2.DeleteWalletRequest(name=wallet.name))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=wallet.name))
        # The name is free again: the row is gone, not hidden.
        await svc.create_wallet("desk")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_wallets_pages_in_name_order_and_filters_by_exchange(service):
    async with service() as svc:
        names = [f"desk-{i:02d}" for i in range(7)]
        for name in reversed(names):
            await svc.create_wallet(name, balances={"BTC": ("1", "0")})
        seen, token = [], ""
        while True:
            page = await svc.stub.ListWallets(
                wallets_pb2.ListWalletsRequest(page_size=3, page_token=token, exchange="coinbase")
            )
            assert len(page.wallets) <= 3
            seen += [w.display_name for w in page.wallets]
            assert all(len(w.balances) == 1 for w in page.wallets)
            token = page.next_page_token
            if not token:
                break
        other = await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest(exchange="kraken"))
    assert seen == names
    assert list(other.wallets) == []


async def test_listed_wallets_equal_get_wallet_with_amounts_in_the_same_form(service):
    # The list reads amounts as text; they must read exactly as GetWallet writes them.
    balances = {
        "BTC": ("1.50", "0.250"),
        "ETH": ("10.123456789012345678", "0"),
        "SOL": ("100.000", "0.000"),
        "USD": ("0.000000000000000001", "123456789"),
    }
    async with service() as svc:
        created = [await svc.create_wallet(f"desk-{i}", balances=balances) for i in range(3)]
        page = await svc.stub.ListWallets(wallets_pb2.ListWalletsRequest(page_size=2))
        rest = await svc.stub.ListWallets(
            wallets_pb2.ListWalletsRequest(page_size=2, page_token=page.next_page_token)
        )
        fetched = [
            (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=w.name))).wallet
            for w in created
        ]
    assert list(page.wallets) + list(rest.wallets) == fetched
    assert _balances(fetched[0]) == {
        "BTC": ("1.75", "1.5", "0.25"),
        "ETH": ("10.123456789012345678", "10.123456789012345678", "0"),
        "SOL": ("100", "100", "0"),
        "USD": (
            "123456789.000000000000000001",
            "0.000000000000000001",
            "123456789",
        ),
    }


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (wallets_pb2.ListWalletsRequest(page_token="not-a-token"), "page_token"),
        (wallets_pb2.ListWalletsRequest(page_size=-1), "page_size"),
        (wallets_pb2.ListWalletsRequest(page_size=1001), "page_size"),
    ],
)
async def test_list_wallets_refuses_bad_paging(service, request_, field):
    async with service() as svc:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.ListWallets(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


async def test_totals_of_38_digit_amounts_are_exact_not_rounded(service):
    # available + hold needs all 38 digits of NUMERIC(38,18); Python's default decimal context
    # keeps 28 and would round the total to 12345678901234567890.
    async with service() as svc:
        created = await svc.create_wallet(
            "desk-wide", balances={"BTC": ("0.000000000000000001", "12345678901234567890")}
        )
        fetched = (await svc.stub.GetWallet(wallets_pb2.GetWalletRequest(name=created.name))).wallet
    assert _balances(fetched) == {
        "BTC": (
            "12345678901234567890.000000000000000001",
            "0.000000000000000001",
            "12345678901234567890",
        )
    }
