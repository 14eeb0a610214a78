"""Reading a body with `next_chunk` alone (`transport.body`), and what a response without capabilities is."""

from __future__ import annotations

import pytest

from sidestep.errors import UpstreamConnectionError
from sidestep.transport.body import chunks, read_all
from sidestep.transport.fake import FakeResponse
from sidestep.transport.types import can_pipe, is_budgeted, is_buffered


async def test_a_body_in_one_piece_is_returned_as_it_is() -> None:
    body = b'{"ok": true}' * 100
    response = FakeResponse(body=body)
    assert await read_all(response) is body
    assert await read_all(response) == b""  # already read to its end


@pytest.mark.parametrize("count", [0, 2, 3, 10_000])
async def test_a_body_in_pieces_is_joined_in_order(count: int) -> None:
    pieces = [b"%d," % i for i in range(count)]
    assert await read_all(FakeResponse(chunks=pieces)) == b"".join(pieces)
    assert [piece async for piece in chunks(FakeResponse(chunks=pieces))] == pieces


async def test_a_failure_while_reading_is_raised_after_what_arrived() -> None:
    error = UpstreamConnectionError("connection reset mid-body")
    with pytest.raises(UpstreamConnectionError, match="mid-body"):
        await read_all(FakeResponse(chunks=[b"a", b"b"], body_error=error))
    seen: list[bytes] = []
    with pytest.raises(UpstreamConnectionError):  # noqa: PT012
        async for piece in chunks(FakeResponse(chunks=[b"a", b"b"], body_error=error)):
            seen.append(piece)  # noqa: PERF401
    assert seen == [b"a", b"b"]


def test_the_fake_response_has_no_optional_capability() -> None:
    response = FakeResponse()
    assert not (can_pipe(response) or is_budgeted(response) or is_buffered(response))
