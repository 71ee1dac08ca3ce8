"""An HTTP scope for driving an ASGI app directly, without a server or an HTTP client."""

from __future__ import annotations

from typing import Any


def post_scope(path: str, *, server: str = "127.0.0.1", **extra: Any) -> dict[str, Any]:
    """A JSON ``POST path`` from a loopback client; ``extra`` keys are added or replaced."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": (server, 80),
        **extra,
    }
