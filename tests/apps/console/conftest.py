from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.apps.console.helpers import copy_flags, make_console


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return copy_flags(tmp_path)


@pytest.fixture
def console(tmp_path: Path, flags: Path) -> Starlette:
    return make_console(tmp_path, flags)
