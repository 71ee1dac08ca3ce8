"""A hostile OpenAI-compatible upstream as a real process, for the corridor's end-to-end tests.

It answers each chat completion with what a perfect model would say for the command in the
prompt (llm-sim's ``correct_candidate``), then misbehaves on the keep-alive connection the
way a broken LLM server or proxy does:

* ``double``: every answer written twice in one write;
* ``late-copy``: every answer again 20 ms later, while the connection idles;
* ``overlong``: a body longer than its ``Content-Length`` (the rest is the same answer);
* ``chunked-extra``: a chunked answer followed by an unrequested second response;
* ``shift``: each request gets the answer to the *previous* request, from any connection (a
  proxy off by one: what a doubled answer turns into downstream).

Run: ``python -m tests.support.hostile_llm --port P --fault double``; ``GET /stats`` counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random

from partial_trust.apps.llm_sim.answers import BadRequest, answer_bytes, parse_command
from partial_trust.apps.llm_sim.config import Mode, SimConfig
from partial_trust.middleware.baseline import route

FAULTS = ("double", "late-copy", "overlong", "chunked-extra", "shift")


def _response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    return head + b"\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


class Hostile:
    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.calls = 0
        self.previous: bytes | None = None
        self.config = SimConfig()
        self.rng = random.Random(0)
        self.tasks: set[asyncio.Task[None]] = set()

    def answer(self, body: bytes) -> bytes:
        try:
            command = parse_command(body)
        except BadRequest:
            return b'{"error": "bad request"}'
        return answer_bytes(body, command, Mode.NONE, self.config, route, self.rng)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                if head.startswith(b"GET /stats"):
                    writer.write(_response(json.dumps({"calls": self.calls}).encode()))
                    continue
                if head.startswith(b"GET "):
                    writer.write(_response(b"{}"))
                    continue
                self.calls += 1
                self.respond(writer, self.answer(body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def respond(self, writer: asyncio.StreamWriter, answer: bytes) -> None:
        if self.fault == "double":
            writer.write(_response(answer) * 2)
        elif self.fault == "late-copy":
            writer.write(_response(answer))
            task = asyncio.get_running_loop().create_task(self._later(writer, _response(answer)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif self.fault == "overlong":
            writer.write(_response(answer) + _response(answer))
        elif self.fault == "chunked-extra":
            writer.write(_chunked(answer) + _response(answer))
        else:  # shift
            previous, self.previous = self.previous, answer
            writer.write(_response(previous if previous is not None else answer))

    @staticmethod
    async def _later(writer: asyncio.StreamWriter, data: bytes) -> None:
        await asyncio.sleep(0.02)
        if not writer.is_closing():
            writer.write(data)


async def _serve(port: int, fault: str) -> None:
    hostile = Hostile(fault)
    server = await asyncio.start_server(hostile.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fault", choices=FAULTS, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.fault))


if __name__ == "__main__":
    main()
