"""The wallet domain's rules on their own: no server, no database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tapedeck_common.errors import InvalidArgument
from tapedeck_wallets.wallets.domain import Balance, NewWallet, balances_after, each_asset_once

EARLIER = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def refused(error: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in error.value.violations}


def test_a_total_is_available_plus_hold_to_the_last_of_38_digits():
    balance = Balance(asset="BTC", available=Decimal("0.000000000000000001"), hold=Decimal(10**19))
    assert balance.total == Decimal("10000000000000000000.000000000000000001")


def test_a_stated_total_must_add_up_or_be_left_out():
    stated = Balance.stated(
        asset="BTC", available=Decimal("1.5"), hold=Decimal("0.25"), total=None, field="b[0]"
    )
    assert stated.total == Decimal("1.75")
    assert Balance.stated(
        asset="BTC", available=Decimal(1), hold=Decimal(1), total=Decimal("2.000"), field="b[0]"
    ) == Balance(asset="BTC", available=Decimal(1), hold=Decimal(1))
    with pytest.raises(InvalidArgument) as caught:
        Balance.stated(
            asset="BTC", available=Decimal(1), hold=Decimal(0), total=Decimal(3), field="b[0]"
        )
    assert refused(caught) == {"b[0].total": "must equal available + hold (or be omitted)"}


@pytest.mark.parametrize("asset", ["btc", "", "-BTC", "B" * 33, "BTC USD"])
def test_an_asset_is_an_upper_case_code(asset):
    with pytest.raises(InvalidArgument) as caught:
        Balance.stated(asset=asset, available=Decimal(1), hold=Decimal(0), total=None, field="b")
    assert list(refused(caught)) == ["b.asset"]


def test_a_wallet_holds_each_asset_once():
    btc = Balance(asset="BTC", available=Decimal(1), hold=Decimal(0))
    eth = Balance(asset="ETH", available=Decimal(2), hold=Decimal(0))
    assert each_asset_once([btc, eth], field="balances") == (btc, eth)
    with pytest.raises(InvalidArgument) as caught:
        each_asset_once([btc, eth, btc], field="balances")
    assert refused(caught) == {"balances[2].asset": "is listed twice"}


def test_balances_are_immutable():
    balance = Balance(asset="BTC", available=Decimal(1), hold=Decimal(0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        balance.available = Decimal(2)  # type: ignore[misc]


def test_setting_balances_keeps_unlisted_assets_unless_replacing():
    current = [
        Balance(asset="BTC", available=Decimal(1), hold=Decimal(0), update_time=EARLIER),
        Balance(asset="USD", available=Decimal(5), hold=Decimal(0), update_time=EARLIER),
    ]
    given = [
        Balance(asset="ETH", available=Decimal(3), hold=Decimal(0)),
        Balance(asset="BTC", available=Decimal("0.5"), hold=Decimal("0.5")),
    ]
    merged = balances_after(current, given, replace=False, now=NOW)
    assert [(b.asset, b.total, b.update_time) for b in merged] == [
        ("BTC", Decimal(1), NOW),
        ("ETH", Decimal(3), NOW),
        ("USD", Decimal(5), EARLIER),
    ]
    replaced = balances_after(current, given, replace=True, now=NOW)
    assert [(b.asset, b.update_time) for b in replaced] == [("BTC", NOW), ("ETH", NOW)]


def test_a_new_wallet_is_on_a_supported_exchange_and_names_its_key():
    def wallet(exchange: str = "coinbase", credentials_ref: str = "DESK_KEY") -> NewWallet:
        return NewWallet.stated(
            display_name="desk",
            exchange=exchange,
            account_ref="portfolio",
            credentials_ref=credentials_ref,
            balances=(),
            field="wallet",
        )

    assert wallet().exchange == "coinbase"
    with pytest.raises(InvalidArgument) as caught:
        wallet(exchange="kraken")
    assert refused(caught) == {"wallet.exchange": "must be one of coinbase"}
    # A key pasted where its name belongs is refused, so no secret is ever stored.
    with pytest.raises(InvalidArgument) as caught:
        wallet(credentials_ref="-----BEGIN EC PRIVATE KEY-----")
    assert list(refused(caught)) == ["wallet.credentials_ref"]
