"""Steady traffic on the corridor while a test changes flags, files or upstreams."""

from __future__ import annotations

import threading

import httpx

from tests.integration.stack import shopping_command
from tests.support.procs import Server


class Traffic:
    """Two client threads posting commands back to back; every status code is kept."""

    def __init__(self, app: Server, prefix: str = "t", timeout_s: float = 10.0) -> None:
        self.url = f"{app.url}/route"
        self.statuses: dict[int, int] = {}
        self._prefix, self._timeout = prefix, timeout_s
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(2)]

    @property
    def failures(self) -> int:
        """Answers that were server errors (the corridor must never turn a 200 into one)."""
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=self._timeout) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                body = shopping_command(f"{self._prefix}{worker}-{i}")
                code = client.post(self.url, json=body).status_code
                self.statuses[code] = self.statuses.get(code, 0) + 1

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
