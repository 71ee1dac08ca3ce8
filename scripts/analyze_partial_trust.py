#!/usr/bin/env python3
"""The runbook's analyzer command, kept working: a shim over ``partial-trust analyze``.

The rollout runbook (and people's shell history) run ``python3
scripts/analyze_partial_trust.py --risk-log ... --output-json ...`` and ``--self-test`` from
a checkout, often without the package installed, so this puts the repository root on
``sys.path`` and hands every argument to the one real implementation. That path imports only
the standard library (pydantic when present), so a bare ``python3`` 3.11 runs it;
``tests/packaging/test_bare_python.py`` keeps it so.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from partial_trust.apps.analysis.cli import analyze_main

if __name__ == "__main__":
    raise SystemExit(analyze_main(sys.argv[1:]))
