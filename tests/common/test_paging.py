"""Signed, request-bound page tokens and page sizes (no server needed)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest

from tapedeck_common.errors import InvalidArgument
from tapedeck_common.paging import PageTokens
from tapedeck_common.settings import ServiceSettings

KEYS = (str, int)


@dataclass
class Request:
    page_size: int = 0
    page_token: str = ""


def issued(tokens: PageTokens, *, query: str = "ListThings:a") -> str:
    page = tokens.page(Request(page_size=2), query=query, keys=KEYS)
    rows, token = page.cut(["x", "y", "z"], lambda row: (row, 7))
    assert list(rows) == ["x", "y"]
    return token


def refused(tokens: PageTokens, token: str, *, query: str = "ListThings:a") -> str:
    with pytest.raises(InvalidArgument) as caught:
        tokens.page(Request(page_token=token), query=query, keys=KEYS)
    [violation] = caught.value.violations
    assert violation.field == "page_token"
    return violation.description


def test_a_token_resumes_after_the_last_row_of_its_page():
    tokens = PageTokens(b"k" * 32)
    page = tokens.page(Request(page_token=issued(tokens)), query="ListThings:a", keys=KEYS)
    assert page.after == ("y", 7)
    assert page.size == 50
    assert page.fetch == 51


def test_the_last_page_has_no_token():
    tokens = PageTokens(b"k" * 32)
    page = tokens.page(Request(page_size=3), query="q", keys=KEYS)
    assert page.cut([1, 2, 3], lambda row: ("a", row)) == ([1, 2, 3], "")


def test_forged_truncated_altered_and_foreign_tokens_are_refused():
    tokens = PageTokens(b"k" * 32)
    good = issued(tokens)
    body, mac = good.split(".")
    document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    document["p"] = ["y", 8]
    altered = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    for token in (
        good[:-3],
        body,
        f"{altered}.{mac}",
        "not-a-token",
        "....",
        "a" * 5000,
        issued(PageTokens(b"other key".ljust(32))),
    ):
        assert refused(tokens, token) == "is not a token this service issued"
    assert refused(tokens, good, query="ListThings:b").startswith("was issued for a different")
    assert refused(tokens, good, query="ListOther:a").startswith("was issued for a different")


def test_a_signed_position_of_another_shape_is_refused():
    tokens = PageTokens(b"k" * 32)
    page = tokens.page(Request(), query="q", keys=KEYS)
    for position in (("a",), ("a", "b"), (1, 2), ("a", 2**63), ("a", 1, 2)):
        assert refused(tokens, page.token_after(position), query="q").startswith("is not a token")


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_sizes_out_of_range_name_the_field(size):
    with pytest.raises(InvalidArgument) as caught:
        PageTokens(b"k" * 32).page(Request(page_size=size), query="q", keys=KEYS)
    [violation] = caught.value.violations
    assert violation.field == "page_size"
    assert violation.description == "must be between 1 and 1000 (0 means 50)"


def test_replicas_sharing_a_tokens_file_accept_each_others_tokens(tmp_path):
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text('{"tokens": []}')
    settings = ServiceSettings(tokens_file=tokens_file)
    token = issued(PageTokens.for_deployment(settings))
    page = PageTokens.for_deployment(settings).page(
        Request(page_token=token), query="ListThings:a", keys=KEYS
    )
    assert page.after == ("y", 7)
    tokens_file.write_text('{"tokens": [], "other": 1}')
    assert refused(PageTokens.for_deployment(settings), token).startswith("is not a token")
