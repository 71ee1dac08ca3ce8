"""The limits every keep-alive pool of LLM connections shares: ``check_pool_limits`` (the
one rule for ``max_connections``, ``max_idle``, ``keepalive_expiry``), ``ConnectionLimitError``
(raised at once past ``max_connections``: a queued call would only spend its deadline
waiting) and ``QUARANTINE_S`` (how long an upstream that sent stray bytes gets no reuse).

The pool itself is ``llm_keepalive.KeepAliveTransport``'s. This module's own pool (httpcore's
HTTP/1.1 connection in a LIFO pool, the transport by default until llhttp's took over) was
removed on 2026-12-07: it cost about twice the default's CPU per call
(``bench/bench_llm_client.py``) and was kept only for comparison.
"""

from __future__ import annotations

#: How long an upstream that sent stray bytes gets a fresh connection for every call.
QUARANTINE_S = 300.0


class ConnectionLimitError(Exception):
    """More calls in flight than the pool allows; the caller fails fast instead of queueing."""


def check_pool_limits(
    owner: str, max_connections: int, max_idle: int, keepalive_expiry: float
) -> None:
    """The one rule for a keep-alive pool's limits, shared by every pool of LLM connections."""
    if max_connections < 1 or max_idle < 0 or keepalive_expiry <= 0:
        raise ValueError(f"{owner} needs max_connections >= 1, max_idle >= 0, keepalive_expiry > 0")
