from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio only: that is what uvicorn runs the middleware on."""
    return "asyncio"
