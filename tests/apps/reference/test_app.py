"""``partial-trust serve``'s app factory (``partial_trust.apps.reference.app``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from partial_trust.apps.reference.app import create_app, create_served_app
from partial_trust.environment import Environment

ENV = {"PARTIAL_TRUST_ENABLED": "false", "PARTIAL_TRUST_FLAGS_PROVIDER": "env"}


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the session collects as before


@pytest.mark.usefixtures("unfrozen")
def test_served_app_moves_the_startup_heap_out_of_the_cyclic_collector() -> None:
    # A full collection of this heap is a 15-45 ms pause of the event loop under load.
    create_served_app(Environment.from_mapping(ENV))
    frozen = gc.get_freeze_count()
    assert frozen > 10_000, f"only {frozen} objects frozen"
    before = len(gc.get_objects())  # the collector's view: the frozen ones are not in it
    assert before < frozen


@pytest.mark.usefixtures("unfrozen")
def test_the_library_factory_leaves_the_collector_alone() -> None:
    create_app(Environment.from_mapping(ENV))
    assert gc.get_freeze_count() == 0


def test_serve_runs_the_freezing_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real server is started by the integration suites; this pins which factory it gets.
    from partial_trust.apps.reference import serve
    from partial_trust.apps.reference.serve_limits import ENV
    from partial_trust.environment import BIND_HOST_ENV

    for name in [*ENV.values(), BIND_HOST_ENV]:  # serve exports these for its workers
        monkeypatch.setenv(name, "")
    calls: list[tuple[object, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    assert serve.main(["--port", "0", "--log-level", "warning"]) == 0
    ((target, kwargs),) = calls
    # serve's factory is create_served_app (the freeze) behind serve.QuietDisconnects
    assert target == "partial_trust.apps.reference.serve:create_app_for_serve"
    assert kwargs["factory"] is True
    built: list[bool] = []

    def built_app() -> object:
        built.append(True)
        return object()

    monkeypatch.setattr(serve, "create_served_app", built_app)
    assert isinstance(serve.create_app_for_serve(), serve.QuietDisconnects) and built
