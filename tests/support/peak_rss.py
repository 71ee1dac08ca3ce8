"""Run a module (``-m NAME``) or a script and write this process's own peak RSS to a file.

Why not ``ru_maxrss`` from ``wait4``: Linux carries a parent's resident size at ``fork`` into
the child's maximum, and keeps it across ``exec``, so a CLI started from a test process that
has grown to 230 MB reports at least 230 MB whatever it did. ``VmHWM`` belongs to the
process image and starts afresh at ``exec``: it is what the command itself used.

Usage: ``PEAK_RSS_FILE=out python peak_rss.py -m partial_trust.apps.cli gate ...``
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys


def _write_peak() -> None:
    target = os.environ.get("PEAK_RSS_FILE")
    if not target:
        return
    with open("/proc/self/status", encoding="ascii") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(target, "w", encoding="ascii") as out:
        out.write(str(kb))


def main() -> None:
    atexit.register(_write_peak)
    if sys.argv[1] == "-m":
        module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script, sys.argv = sys.argv[1], sys.argv[1:]
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
