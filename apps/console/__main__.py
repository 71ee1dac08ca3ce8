"""``python -m partial_trust.apps.console`` = ``partial-trust flags serve``."""

from __future__ import annotations

import sys

from partial_trust.apps.console import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
