"""Partial Trust Corridor: an LLM decides inside one allow-listed corridor, safely.

The public API is small: ``PartialTrustMiddleware`` wraps a router's ASGI app,
``CorridorEngine`` holds the corridor's clients and sinks, ``ShoppingCorridor`` is the
reference corridor, and ``build_engine`` wires them from the environment.
"""
