"""Request headers read only when asked for.

httptools hands over each header as it parses it: a call and two new bytes objects per header, ~9 % of
the instructions of a minimal gateway request with the OpenAI SDK's seventeen headers. The server
therefore registers no header callback. It keeps the bytes each request's head arrived in and splits them
into pairs only when a handler asks (`head_pairs`).

A head's bytes are known when its request is the first to begin in a run of reads that started between
requests. That is every request of a client that waits for each answer, and the first of a pipelined
batch. The start of a later request in a batch is not known, because httptools tells no byte offsets.
For that request, the bytes read since the run started are parsed again by a parser that does collect
headers (`Replay`). Parsing is deterministic, so its Nth request is the connection's Nth. From then on,
the connection parses with it (`Replay.take_over`): at most one replay per connection, never quadratic.

`sendable` is the other direction's slow path: response header lines holding what cannot go as it is.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import httptools

__all__ = ["HeadConsumer", "Replay", "head_pairs", "head_size", "head_value", "pair_value", "sendable"]

Pairs = list[tuple[bytes, bytes]]


def head_pairs(head: bytes) -> Pairs:
    """The header pairs of a request head as httptools reports them: names as sent, values without
    leading whitespace. `head` starts at the request (empty lines before it are skipped, as llhttp skips
    them); anything after the blank line that ends it (a body, another request) is ignored. llhttp has
    already refused what it does not accept (bare LF line ends, folded lines), so lines split cleanly."""
    head = head.lstrip(b"\r\n")
    end = head.find(b"\r\n\r\n")
    lines = (head if end < 0 else head[:end]).split(b"\r\n")
    pairs: Pairs = []
    for line in lines[1:]:  # after the request line
        name, _, value = line.partition(b":")
        pairs.append((name, value.lstrip(b" \t")))
    return pairs


def head_value(head: bytes, name: bytes) -> bytes | None:
    """The value of header `name` (lower-case) in `head`, the first if repeated, found without splitting
    the head into pairs: a handful of C-level searches instead of a Python loop over every header."""
    head = head.lstrip(b"\r\n")
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = len(head)
    at = head[: end + 2].lower().find(b"\r\n" + name + b":")  # at a line start: never the request line
    if at < 0:
        return None
    start = at + len(name) + 3
    stop = head.find(b"\r\n", start, end + 2)
    return head[start:stop].lstrip(b" \t")


def pair_value(pairs: Pairs, name: bytes) -> bytes | None:
    """The value of header `name` (lower-case) among split pairs, the first if repeated."""
    size = len(name)
    for key, value in pairs:
        if len(key) == size and key.lower() == name:
            return value
    return None


def head_size(head: bytes) -> int:
    """Bytes in the request line and header lines of `head` (what the header limit counts)."""
    head = head.lstrip(b"\r\n")
    end = head.find(b"\r\n\r\n")
    return len(head) if end < 0 else end


def sendable(headers: list[tuple[str, str]]) -> str:
    """Header lines that cannot split the response or fail to encode: every byte of a name or value outside
    printable ASCII (CR, LF, other controls, anything past ASCII as UTF-8) is percent-encoded."""
    return "".join(f"{_escape_field(name)}: {_escape_field(value)}\r\n" for name, value in headers)


def _escape_field(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe="".join(map(chr, range(0x20, 0x7F))).replace("%", ""))


class HeadConsumer(Protocol):
    """What a `Replay` forwards to once it has taken over (the connection's parser callbacks)."""

    def on_message_begin(self) -> None: ...
    def on_url(self, url: bytes) -> None: ...
    def on_headers_complete(self) -> None: ...
    def on_body(self, body: bytes) -> None: ...
    def on_chunk_header(self) -> None: ...
    def on_message_complete(self) -> None: ...


class Replay:
    """A second parser over bytes the connection's parser has read already, collecting the header pairs
    of each request in them (`heads`, in order). After `take_over`, the connection parses with it: it
    forwards every callback and keeps collecting headers, the current request's in `current`."""

    __slots__ = ("_consumer", "_in_head", "current", "failed", "heads", "parser")

    def __init__(self, chunks: list[bytes]) -> None:
        self.heads: list[Pairs] = []
        self.current: Pairs = []
        self._in_head = False  # headers after the head are a chunked body's trailers: never collected
        self._consumer: HeadConsumer | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.failed = False
        for chunk in chunks:
            try:
                self.parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                continue  # as for the connection's parser: the rest of that read is dropped, parsing goes on
            except httptools.HttpParserError:
                # Bytes after the request being looked up are malformed. The heads before them are
                # collected; the connection's own parser reaches the same error and refuses the rest.
                self.failed = True
                return

    @property
    def live(self) -> bool:
        """The connection parses with this replay now (`take_over` was called)."""
        return self._consumer is not None

    def take_over(self, consumer: HeadConsumer) -> httptools.HttpRequestParser:
        """Forward to `consumer` from now on; returns the parser to feed (it is where the connection's
        parser is: both read the same bytes)."""
        self._consumer = consumer
        self.current = self.heads[-1] if self.heads else []
        self.heads = []
        return self.parser

    def close(self) -> None:
        """Break the cycles through this replay (its parser calls back into it, it into the consumer), so
        that reference counting frees it and the connection when they are dropped."""
        self.parser = httptools.HttpRequestParser(None)
        self._consumer = None
        self.heads = []

    def on_message_begin(self) -> None:
        self.current = []
        self._in_head = True
        if self._consumer is None:
            self.heads.append(self.current)
        else:
            self._consumer.on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._consumer is not None:
            self._consumer.on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            self.current.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._consumer is not None:
            self._consumer.on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._consumer is not None:
            self._consumer.on_body(body)

    def on_chunk_header(self) -> None:
        if self._consumer is not None:
            self._consumer.on_chunk_header()

    def on_message_complete(self) -> None:
        if self._consumer is not None:
            self._consumer.on_message_complete()
