"""``partial-trust llm-sim``: a fault-injecting OpenAI-compatible LLM double.

Integration, load and fault tests (and humans running drills) point the corridor's
``LLM_BASE_URL`` at it. Modules: ``config`` (fault mix), ``answers`` (candidates and their
corruptions), ``app`` (the Starlette app and control API), ``cli`` (options, uvicorn).
"""

from __future__ import annotations

from partial_trust.apps.llm_sim.app import create_app
from partial_trust.apps.llm_sim.cli import main
from partial_trust.apps.llm_sim.config import Mode, SimConfig

__all__ = ["Mode", "SimConfig", "create_app", "main"]
