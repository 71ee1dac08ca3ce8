"""The corridor's mode (DESIGN, "Wave 2"): ``off`` < ``shadow`` < ``canary``, stricter first.

``canary`` is the runbook's behaviour: an accepted candidate is served. ``shadow`` asks the
LLM after the baseline's answer went out and only records what it would have done. ``off``
asks nothing. Read from the flag ``partial-trust-mode`` and the variable
``PARTIAL_TRUST_MODE``; a set variable is a ceiling the flag cannot exceed
(``config.apply_ceiling``).
"""

from __future__ import annotations

import enum
import logging

logger = logging.getLogger("partial_trust.config")


class Mode(enum.StrEnum):
    OFF = "off"
    SHADOW = "shadow"
    CANARY = "canary"


#: Unset everywhere: the runbook's behaviour.
DEFAULT_MODE = Mode.CANARY
_ORDER = {Mode.OFF: 0, Mode.SHADOW: 1, Mode.CANARY: 2}


def parse_mode(raw: object, default: Mode = DEFAULT_MODE) -> Mode:
    """``off``/``shadow``/``canary`` (any case, trimmed); unset or blank gives ``default``;
    anything else is the strictest valid reading, ``off``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    if isinstance(raw, str):
        try:
            return Mode(raw.strip().lower())
        except ValueError:
            pass
    logger.warning("the corridor mode is not off, shadow or canary; corridor off")
    return Mode.OFF


def stricter_mode(a: Mode, b: Mode) -> Mode:
    """The stricter of two modes: off < shadow < canary."""
    return a if _ORDER[a] <= _ORDER[b] else b
