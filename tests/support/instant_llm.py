"""An LLM connection in process that has its answer ready the moment a request is sent.

Nothing in it waits, so a call through it costs only the client's own work (no socket system
calls): ``bench/bench_middleware.py`` measures the candidate's CPU with it, and
``tests/test_llm_pool.py`` checks that such a call never yields to the event loop.
"""

from __future__ import annotations

from typing import Any

import httpcore


def http_response(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    return head + str(len(body)).encode() + b"\r\n\r\n" + body


class InstantStream(httpcore.AsyncNetworkStream):
    """A keep-alive connection that answers each complete request with ``response`` at once."""

    def __init__(self, response: bytes) -> None:
        self._response = response
        self._sent = b""
        self._answer = b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._sent += buffer
        head_end = self._sent.find(b"\r\n\r\n")
        if head_end < 0:
            return
        length = 0
        for line in self._sent[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        end = head_end + 4 + length
        if len(self._sent) >= end:
            self._sent = self._sent[end:]
            self._answer += self._response

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data, self._answer = self._answer[:max_bytes], self._answer[max_bytes:]
        return data

    async def aclose(self) -> None:
        return None

    def get_extra_info(self, info: str) -> Any:
        return False if info == "is_readable" else None


class InstantBackend(httpcore.AsyncNetworkBackend):
    """Hands out ``InstantStream``s answering with the completion ``body``; counts connects."""

    def __init__(self, body: bytes) -> None:
        self._response = http_response(body)
        self.connects = 0

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.connects += 1
        return InstantStream(self._response)
