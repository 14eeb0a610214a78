"""Request heads split lazily (`sidestep.server.heads`) give exactly what httptools' header callback gives."""

from __future__ import annotations

import httptools
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sidestep.server.heads import Replay, head_pairs, head_size, head_value

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~", min_size=1)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from(" \t"), max_size=40)


class _Collector:
    def __init__(self) -> None:
        self.heads: list[list[tuple[bytes, bytes]]] = []

    def on_message_begin(self) -> None:
        self.heads.append([])

    def on_header(self, name: bytes, value: bytes) -> None:
        self.heads[-1].append((name, value))


def _request(headers: list[tuple[str, str]], lead: str = "") -> bytes:
    lines = "".join(f"{name}:{value}\r\n" for name, value in headers)
    return f"{lead}POST /v1/chat/completions HTTP/1.1\r\n{lines}Content-Length: 2\r\n\r\n{{}}".encode()


def _httptools_heads(data: bytes) -> list[list[tuple[bytes, bytes]]]:
    collector = _Collector()
    httptools.HttpRequestParser(collector).feed_data(data)
    return collector.heads


@settings(max_examples=300)
@example([("X-Trailing", "a \t"), ("x-twice", "\tone"), ("X-TWICE", "two"), ("X-Empty", " ")], "\r\n")
@given(
    st.lists(st.tuples(_TOKEN, _VALUE), max_size=12),
    st.sampled_from(["", "\r\n", "\r\n\r\n"]),
)
def test_pairs_and_values_match_httptools(headers: list[tuple[str, str]], lead: str) -> None:
    data = _request(headers, lead)
    try:
        expected = _httptools_heads(data)[0]
    except httptools.HttpParserError:
        return  # llhttp refuses it: the server never splits such a head
    assert head_pairs(data) == expected
    for name, _ in expected:
        wanted = name.lower()
        first = next(value for key, value in expected if key.lower() == wanted)
        assert head_value(data, wanted) == first  # the first if repeated, whatever the case
    assert head_value(data, b"x-not-sent") is None
    assert head_size(data) == data.index(b"\r\n\r\n", len(lead)) - len(lead)


def test_a_value_is_not_found_in_the_request_line_or_the_body() -> None:
    data = b"POST /x-api-key:%20no HTTP/1.1\r\nHost: h\r\n\r\nx-api-key: in the body\r\n\r\n"
    assert head_value(data, b"x-api-key") is None
    assert head_value(data, b"host") == b"h"
    assert head_value(b"GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", b"x-empty") == b""


def test_a_replay_collects_every_head_then_forwards() -> None:
    first = b"POST /a HTTP/1.1\r\nX-Id: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\nX-Id: 2\r\n\r\nGET /c HTTP/1.1\r\nX-I"
    replay = Replay([first, second])
    assert not replay.failed
    assert replay.heads[:2] == [[(b"X-Id", b"1"), (b"Transfer-Encoding", b"chunked")], [(b"X-Id", b"2")]]
    third = replay.heads[2]
    assert third == []  # /c's head is still incomplete: its first header has not ended

    class Consumer:
        def __init__(self) -> None:
            self.events: list[str] = []

        def on_message_begin(self) -> None:
            self.events.append("begin")

        def on_url(self, url: bytes) -> None:
            self.events.append(url.decode())

        def on_headers_complete(self) -> None:
            self.events.append("headers")

        def on_body(self, body: bytes) -> None:
            self.events.append(body.decode())

        def on_message_complete(self) -> None:
            self.events.append("complete")

    consumer = Consumer()
    parser = replay.take_over(consumer)
    parser.feed_data(b"d: 3\r\n\r\nGET /d HTTP/1.1\r\nX-Id: 4\r\n\r\n")
    assert third == [(b"X-Id", b"3")]  # completed by the parser that took over
    assert replay.current == [(b"X-Id", b"4")]  # the request parsed last
    assert consumer.events == ["headers", "complete", "begin", "/d", "headers", "complete"]


def test_a_replay_over_malformed_bytes_keeps_the_heads_before_them() -> None:
    replay = Replay([b"GET /a HTTP/1.1\r\nX-Id: 1\r\n\r\nGET /b HTTP/1.1\r\nX-Id: 2\r\n\r\nBAD\x00 / HTTP/1.1\r\n\r\n"])
    assert replay.failed
    assert replay.heads[:2] == [[(b"X-Id", b"1")], [(b"X-Id", b"2")]]
