"""Headers, query parameters, cookies and state."""

from __future__ import annotations

import pytest

from trioapi import Headers, MalformedRequestError, QueryParams, State
from trioapi._http.datastructures import parse_cookies


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    headers = Headers([(b"X-Tag", b"a"), (b"x-tag", b"b"), (b"Host", b"example")])
    assert headers["x-tag"] == "a"
    assert headers.getlist("X-TAG") == ["a", "b"]
    assert "HOST" in headers
    assert 42 not in headers
    assert sorted(headers) == ["host", "x-tag"]
    assert len(headers) == 2
    assert headers.raw()[0] == (b"X-Tag", b"a")
    assert Headers.from_mapping({"A": "1"})["a"] == "1"
    assert "x-tag" in repr(headers)


def test_query_params_keep_every_value_and_blank_ones() -> None:
    params = QueryParams(b"tag=a&tag=b&empty=&x=%20y")
    assert params["tag"] == "b"  # the last one, as in Starlette (FastAPI reads it so)
    assert params.getlist("tag") == ["a", "b"]
    assert params.multi_items()[:2] == [("tag", "a"), ("tag", "b")]
    assert params["empty"] == ""
    assert params["x"] == " y"
    assert len(params) == 3
    assert list(params) == ["tag", "empty", "x"]
    assert QueryParams("a=1")["a"] == "1"
    assert "tag" in repr(params)


@pytest.mark.parametrize("raw", [b"q=%ff", "q=\u00e9".encode()])
def test_query_strings_that_are_not_utf8_or_ascii_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedRequestError) as caught:
        QueryParams(raw)
    assert caught.value.status_hint == 400


def test_cookies_parse_quoted_values_and_skip_junk() -> None:
    headers = Headers(
        [(b"cookie", b'a=1; junk; =nameless; b="quoted value"; a=2'), (b"cookie", b"c=3")]
    )
    # "a" twice: the last value, as FastAPI reads it.
    assert parse_cookies(headers) == {"a": "2", "b": "quoted value", "c": "3"}


def test_state_is_an_attribute_bag_that_says_what_is_missing() -> None:
    state = State()
    state.db = "connection"
    assert state.db == "connection"
    del state.db
    with pytest.raises(AttributeError, match="has no attribute 'db'; set it first"):
        _ = state.db
    with pytest.raises(AttributeError):
        del state.db
    shared: dict[str, object] = {"user": "ann"}
    assert State(shared).user == "ann"
    assert "ann" in repr(State(shared))
