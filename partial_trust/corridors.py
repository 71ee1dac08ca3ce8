"""Which corridors may exist, how risky each is, and the flag keys each one reads.

Why a table in code and not configuration: ADR-004 lets an LLM decide only inside corridors
someone reviewed and allow-listed. A corridor's risk class is part of that review, so the
allowlist pins it: a corridor object that declares itself ``read`` under a name the table
lists as ``admin`` is refused, exactly like a name the table does not list. The engine, the
stack and the factory refuse both at construction (``check_corridor``), with a
``ValueError`` that names the corridor and the table.

Risk classes (DESIGN, "Wave 2"): ``read`` < ``write`` < ``commit`` < ``deploy`` < ``admin``.
The class caps the mode the flags can give (``mode_cap``): ``admin`` never goes beyond
``shadow`` (advisory only, the seeds' checklist), whatever a flag or variable asks; every
other class may reach ``canary``. The rule between classes (a higher class not past a lower
one that has not passed its gate) is an operator rule, checked where a stage is changed
(``rollout_order_problem``: ``partial-trust flags set ... mode`` and the console), not on
the request path: a gate verdict is days of risk log judged offline, which a request cannot
read, and one process serves only its own corridor's flags.

Flag keys, one documented rule (``flag_keys``): the shopping corridor ``add_shopping_item``
keeps the runbook's keys ``partial-trust-<setting>``; every other corridor reads
``partial-trust.<corridor>.<setting>`` (``partial-trust.show_shopping_list.mode``), settings
``enabled``, ``sample-rate``, ``timeout-ms``, ``profile-id``, ``mode``, ``review-enabled``.
A dot cannot occur in a corridor name (a lower-case identifier), so no key of one corridor
is ever another's.
The environment variables (``PARTIAL_TRUST_*``) stay process-wide ceilings over every
corridor: the runbook's ``export PARTIAL_TRUST_ENABLED=false`` turns them all off.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from partial_trust.mode import Mode, stricter_mode


class RiskClass(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    COMMIT = "commit"
    DEPLOY = "deploy"
    ADMIN = "admin"


RISK_ORDER: Mapping[RiskClass, int] = MappingProxyType({c: i for i, c in enumerate(RiskClass)})

SHOPPING = "add_shopping_item"
#: THE allowlist: the only corridors that can be mounted, each with its reviewed risk class.
#: ``show_shopping_list`` (read) and ``share_shopping_list`` (admin: it changes who may see a
#: list) are reviewed and allowed; only ``add_shopping_item`` ships a corridor implementation.
CORRIDOR_ALLOWLIST: Mapping[str, RiskClass] = MappingProxyType(
    {
        SHOPPING: RiskClass.WRITE,
        "show_shopping_list": RiskClass.READ,
        "share_shopping_list": RiskClass.ADMIN,
    }
)

#: The furthest mode each class may reach.
MODE_CAP: Mapping[RiskClass, Mode] = MappingProxyType(
    {c: Mode.SHADOW if c is RiskClass.ADMIN else Mode.CANARY for c in RiskClass}
)

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: The five rollout settings, then the review store's switch (``review-enabled``: it only
#: lets a configured review store keep this corridor's cases; no variable caps it).
SETTINGS = ("enabled", "sample-rate", "timeout-ms", "profile-id", "mode", "review-enabled")
SHOPPING_PREFIX = "partial-trust-"


def check_corridor(name: object, risk_class: object) -> RiskClass:
    """The corridor's risk class if it may be mounted; ``ValueError`` saying why if not."""
    allowed = ", ".join(f"{n} ({c.value})" for n, c in CORRIDOR_ALLOWLIST.items())
    if not isinstance(name, str) or name not in CORRIDOR_ALLOWLIST:
        raise ValueError(
            f"corridor {name!r} is not on the code's allowlist "
            f"(partial_trust.corridors.CORRIDOR_ALLOWLIST: {allowed}); it cannot be mounted"
        )
    pinned = CORRIDOR_ALLOWLIST[name]
    try:
        declared = RiskClass(str(risk_class))
    except ValueError:
        raise ValueError(
            f"corridor {name!r} declares risk class {risk_class!r}; one of: "
            + ", ".join(c.value for c in RiskClass)
        ) from None
    if declared is not pinned:
        raise ValueError(
            f"corridor {name!r} declares risk class {declared.value!r} but the allowlist pins "
            f"{pinned.value!r}; a corridor cannot choose its own class"
        )
    return pinned


def mode_cap(risk_class: RiskClass) -> Mode:
    return MODE_CAP[risk_class]


def cap_mode(mode: Mode, risk_class: RiskClass) -> tuple[Mode, bool]:
    """(the mode the class allows, whether the class lowered it)."""
    capped = stricter_mode(mode, MODE_CAP[risk_class])
    return capped, capped is not mode


def corridor_mode_cap(corridor: str) -> tuple[Mode, str] | None:
    """(the furthest mode, ``"risk class <c>"``) when the class caps below canary, else
    ``None``: what ``config.apply_ceiling`` takes as ``mode_cap``."""
    rc = CORRIDOR_ALLOWLIST.get(corridor)
    if rc is None or MODE_CAP[rc] is Mode.CANARY:
        return None
    return MODE_CAP[rc], f"risk class {rc.value}"


@dataclass(frozen=True, slots=True)
class FlagKeys:
    """The flag keys of one corridor (see the module docstring for the rule)."""

    enabled: str
    sample_rate: str
    timeout_ms: str
    profile_id: str
    mode: str
    review_enabled: str

    def all(self) -> tuple[str, ...]:
        """Every key, in ``SETTINGS`` order."""
        return (
            self.enabled, self.sample_rate, self.timeout_ms, self.profile_id, self.mode,
            self.review_enabled,
        )  # fmt: skip


def flag_keys(corridor: str) -> FlagKeys:
    """``add_shopping_item``: ``partial-trust-<setting>``; any other corridor:
    ``partial-trust.<corridor>.<setting>``."""
    if corridor == SHOPPING:
        return FlagKeys(*(SHOPPING_PREFIX + s for s in SETTINGS))
    if _NAME.fullmatch(corridor) is None:
        raise ValueError(f"corridor name {corridor!r} is not a lower-case identifier")
    return FlagKeys(*(f"partial-trust.{corridor}.{s}" for s in SETTINGS))


def corridor_of_key(key: str) -> tuple[str, str] | None:
    """(corridor, setting) of an allow-listed corridor's flag key, else ``None``."""
    for name in CORRIDOR_ALLOWLIST:
        keys = flag_keys(name).all()
        if key in keys:
            return name, SETTINGS[keys.index(key)]
    return None


def rollout_order_problem(
    corridor: str, mode: Mode, modes: Mapping[str, Mode | None]
) -> str | None:
    """Why ``corridor`` may not be set to ``mode`` now, or ``None``.

    ``modes``: the mode each allow-listed corridor is at (``None``: not rolled out at all).
    The class cap first (``admin`` never past ``shadow``); then the order between classes:
    a corridor may not go to ``canary`` while a corridor of a LOWER class that is being rolled
    out (present in ``modes``) is not yet in ``canary``, i.e. has not passed its shadow gate
    (the console refuses to advance without GO). A corridor not rolled out holds nothing back.
    """
    rc = CORRIDOR_ALLOWLIST.get(corridor)
    if rc is None:
        return f"corridor {corridor!r} is not on the code's allowlist"
    capped, lowered = cap_mode(mode, rc)
    if lowered:
        return f"risk class {rc.value} caps {corridor} at {capped.value}"
    if mode is not Mode.CANARY:
        return None
    for other, other_mode in modes.items():
        orc = CORRIDOR_ALLOWLIST.get(other)
        if orc is None or other_mode is None or RISK_ORDER[orc] >= RISK_ORDER[rc]:
            continue
        if other_mode is not Mode.CANARY:
            return (
                f"{other} ({orc.value}) is at {other_mode.value}: a {rc.value} corridor goes to "
                f"canary only after every lower class rolled out has passed its shadow gate"
            )
    return None
