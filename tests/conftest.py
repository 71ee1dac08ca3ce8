from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from partial_trust.apps.llm_sim import SimConfig, create_app
from tests.corridor_harness import LLM_URL, completion, good_candidate
from tests.support.llm_sim import sim_client
from tests.support.tls import self_signed_certificate

# Its helpers assert for the bad-input tests: rewritten, a failure shows the values compared.
pytest.register_assert_rewrite("tests.support.bad_input")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio only: that is what uvicorn runs the middleware on."""
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    """The LLM double in process, seeded, for the ``test_llm_sim_*`` modules.

    Here rather than in one of them because all three use it; a module that needs a different
    ``sim`` (a real process, as in ``tests/integration``) defines its own, which wins.
    """
    async with sim_client(create_app(SimConfig(seed=7))) as client:
        yield client


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made now by the openssl CLI, for
    the ``test_llm_transport_*`` modules (TLS, and connections freed under TLS)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    """respx doubling the LLM endpoint (``tests.support.respx_llm``), no route set, for the
    ``test_llm_client*`` modules: each test mocks the answer it needs."""
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def llm() -> Iterator[Any]:
    """respx doubling the corridor's LLM with a good candidate, for the ``test_bad_input*``
    modules (most assert it is never called); ``test_asgi.py`` defines its own, which wins."""
    with respx.mock(base_url=LLM_URL, assert_all_called=False) as mock:
        mock.post("/chat/completions").mock(return_value=completion(good_candidate()))
        yield mock
