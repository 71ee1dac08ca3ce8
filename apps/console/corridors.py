"""The console's "Corridors" section: one panel per corridor on the code's allowlist.

Each corridor has its own flags (``partial_trust.corridors.flag_keys``) in the same flag file,
so the operator sees at once which corridor is on, in which mode (and whether its risk class
capped it: ``admin`` stays in shadow) and at which stage, and kills or resumes one without
touching the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partial_trust.apps.console.state import read_flags
from partial_trust.config import EnvDefaults
from partial_trust.corridors import CORRIDOR_ALLOWLIST, corridor_mode_cap, flag_keys
from partial_trust.flags import flagfile


def corridor_panels(path: Path, defaults: EnvDefaults) -> list[dict[str, Any]]:
    """One panel per corridor on the code's allowlist (the page's "Corridors" section): its
    risk class, mode (and whether the class capped it), on/off and stage, and whether the
    flag file defines any of its keys (``rolled_out``)."""
    try:
        doc = flagfile.load(path)
    except flagfile.FlagFileError:
        return []
    panels = []
    for name, risk_class in CORRIDOR_ALLOWLIST.items():
        f = read_flags(path, defaults, corridor=name)
        panels.append(
            {
                "corridor": name,
                "risk_class": risk_class.value,
                "rolled_out": any(k in doc.flags for k in flag_keys(name).all()),
                "on": f["on"],
                "enabled": f["enabled"],
                "mode": f["mode"],
                "mode_capped": f["mode_capped"],
                "mode_cap": "shadow" if corridor_mode_cap(name) else "canary",
                "stage": f["stage"],
                "why_off": f["why_off"],
                "sample_rate": f["sample_rate"],
            }
        )
    return panels
