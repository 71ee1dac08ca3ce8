"""Shared fixtures: a clean OpenFeature global per test, and a private copy of the flag file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "flags" / "partial-trust.flagd.json"


@pytest.fixture(autouse=True)
def clean_openfeature() -> Iterator[None]:
    """OpenFeature's ``api`` is a process-wide singleton: start and end every test empty."""
    api.shutdown()
    yield
    api.shutdown()


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "partial-trust.flagd.json"
    shutil.copy(SHIPPED, path)
    return path
