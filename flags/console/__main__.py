"""``python -m flags.console`` = ``partial-trust flags serve``."""

from __future__ import annotations

import sys

from flags.console import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
