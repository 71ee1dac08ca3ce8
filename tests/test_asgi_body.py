"""``asgi._buffer_body``: the body read once, and a ``receive`` that replays what was sent."""

from __future__ import annotations

from typing import Any

import pytest

from partial_trust.middleware.asgi import _buffer_body

pytestmark = pytest.mark.anyio

DISCONNECT = {"type": "http.disconnect"}


def client(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else DISCONNECT

    return receive


async def drain(replay: Any, n: int) -> list[dict[str, Any]]:
    return [await replay() for _ in range(n)]


async def test_one_message_is_handed_back_as_it_came_then_the_client() -> None:
    message = {"type": "http.request", "body": b'{"a":1}', "more_body": False}
    body, complete, replay = await _buffer_body(client(message), 64)
    assert (body, complete) == (b'{"a":1}', True)
    first, then = await drain(replay, 2)
    assert first is message and then == DISCONNECT


async def test_a_message_with_no_body_key_is_an_empty_body() -> None:
    body, complete, _ = await _buffer_body(client({"type": "http.request"}), 64)
    assert (body, complete) == (b"", True)


async def test_chunks_are_joined_and_replayed_as_one_message() -> None:
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"e", "more_body": False},
    ]
    body, complete, replay = await _buffer_body(client(*chunks), 64)
    assert (body, complete) == (b"abcde", True)
    assert await drain(replay, 2) == [
        {"type": "http.request", "body": b"abcde", "more_body": False},
        DISCONNECT,
    ]


async def test_over_the_limit_the_prefix_is_replayed_and_the_rest_streams_through() -> None:
    chunks = [
        {"type": "http.request", "body": b"x" * 40, "more_body": True},
        {"type": "http.request", "body": b"y" * 40, "more_body": True},
        {"type": "http.request", "body": b"z", "more_body": False},
    ]
    body, complete, replay = await _buffer_body(client(*chunks), 64)
    assert complete is False and body == b"x" * 40 + b"y" * 40
    assert await drain(replay, 2) == [
        {"type": "http.request", "body": b"x" * 40 + b"y" * 40, "more_body": True},
        chunks[2],
    ]


async def test_a_client_gone_mid_body_is_replayed_with_what_it_sent() -> None:
    part = {"type": "http.request", "body": b"ab", "more_body": True}
    body, complete, replay = await _buffer_body(client(part, DISCONNECT), 64)
    assert (body, complete) == (b"ab", False)
    assert await drain(replay, 2) == [
        {"type": "http.request", "body": b"ab", "more_body": True},
        DISCONNECT,
    ]


async def test_a_client_gone_before_any_body_is_replayed_as_gone() -> None:
    body, complete, replay = await _buffer_body(client(DISCONNECT), 64)
    assert (body, complete) == (b"", False)
    assert await drain(replay, 1) == [DISCONNECT]
