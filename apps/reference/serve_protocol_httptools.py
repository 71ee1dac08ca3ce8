"""uvicorn's httptools protocol with the head and body deadlines
(``partial_trust.apps.reference.serve_protocol``).

A module of its own because importing it needs ``httptools`` (``uvicorn[standard]``), which a
plain ``uvicorn`` install does not have; ``protocol_path("auto")`` picks it only when present.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from partial_trust.apps.reference.serve_protocol import RequestDeadlines


class HttpToolsWithDeadlines(RequestDeadlines, HttpToolsProtocol):
    """uvicorn's httptools protocol with the head and body deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pt_setup()
