"""What the console shows: effective values and their source, the stage, the gate verdict.

Everything is read from the flag file with ``partial_trust.flags.flagfile`` (the same parser the
CLI and the
services use) and the runbook's environment defaults (``partial_trust.config.EnvDefaults``): a
flag the file does not serve falls back to its environment default, and a variable that is
set is a ceiling (``partial_trust.config.apply_ceiling``), exactly as the services do. The
console applies ITS OWN environment: run it with the services' ``PARTIAL_TRUST_*`` variables
to see what they see. ``limits`` (and each row's ``limited_by``) name what decided a value.

Stages are presets of the sample rate: off (the kill switch, or a rate of 0), stage 1 (1%),
stage 2 (5%), stage 3 (10%), anything else "custom". Advance/retreat moves one preset along
``STAGE_RATES``; from a custom rate, to the nearest preset above/below.

The gate verdict for the next stage is ``partial-trust gate --stage N`` computed in-process
(``partial_trust.apps.analysis``) on the corridor's own records of the risk log
(``corridor_log``: each corridor is judged on its own evidence), where N is the stage the
corridor is at (its go criteria decide whether it may advance). Records count from the time the
sample rate was last set (the flag's ``changedAt`` metadata), so a stage is judged on its own
evidence. Anything that prevents the computation (no risk log, the analyzer failing) is "not
available".
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from partial_trust.config import (
    ENV_ENABLED,
    ENV_INTENT,
    ENV_TIMEOUT_MS,
    EnvDefaults,
    FlagValues,
    apply_ceiling,
    ceilinged,
    parse_profile_id,
    parse_sample_rate,
    parse_timeout_ms,
)
from partial_trust.corridors import (
    CORRIDOR_ALLOWLIST,
    SETTINGS,
    SHOPPING,
    FlagKeys,
    corridor_mode_cap,
    flag_keys,
)
from partial_trust.flags import flagfile
from partial_trust.mode import Mode, parse_mode
from partial_trust.thresholds import STAGES

#: sample rate of stage 1, 2, 3 (the runbook's 1% -> 5% -> 10%)
STAGE_RATES: tuple[float, ...] = tuple(s.sample_rate for _, s in sorted(STAGES.items()))
_EPS = 1e-9
#: setting (``corridors.SETTINGS``) -> its variable, a ceiling over every corridor
_ENV_NAMES = {
    "enabled": "PARTIAL_TRUST_ENABLED",
    "sample-rate": "PARTIAL_TRUST_SAMPLE_RATE",
    "timeout-ms": "PARTIAL_TRUST_TIMEOUT_MS",
    "profile-id": "PARTIAL_TRUST_PROFILE_ID",
    "mode": "PARTIAL_TRUST_MODE",
}


def stage_number(rate: float) -> int | None:
    """1, 2 or 3 when ``rate`` is exactly a preset, else None."""
    for number, preset in enumerate(STAGE_RATES, start=1):
        if math.isclose(rate, preset, abs_tol=_EPS):
            return number
    return None


def stage_label(on: bool, rate: float) -> str:
    """``stage 2 (5%)``, ``custom (3%)``; when off, the stage it would resume at."""
    if rate <= _EPS:
        return "off (sample rate 0)"
    number = stage_number(rate)
    label = f"stage {number} ({rate:.0%})" if number else f"custom ({rate * 100:g}%)"
    return label if on else f"off (resumes at {label})"


def next_rate(rate: float, direction: str) -> float | None:
    """The neighbouring preset (``advance`` / ``retreat``), None at either end of the ladder."""
    if direction == "advance":
        return next((r for r in STAGE_RATES if r > rate + _EPS), None)
    return next((r for r in reversed(STAGE_RATES) if r < rate - _EPS), None)


def gate_stage(rate: float) -> int | None:
    """The stage whose gate decides the next step: the highest preset at or below ``rate``."""
    found = [n for n, r in enumerate(STAGE_RATES, start=1) if r <= rate + _EPS]
    return found[-1] if found else None


@dataclass(frozen=True)
class FlagRow:
    key: str
    value: object  # the effective value after the runbook's parsing
    served: object  # what the file serves (None: not served)
    source: str
    note: str
    limited_by: str = ""  # "env <VARIABLE>" when a set variable holds the value below the file's

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "served": self.served,
            "source": self.source,
            "note": self.note,
            "limited_by": self.limited_by,
        }


def read_flags(path: Path, defaults: EnvDefaults, corridor: str = SHOPPING) -> dict[str, Any]:
    """The page's flag section for one corridor (its own keys, ``corridors.flag_keys``, and
    its risk class's mode cap); a broken file is reported, never raised."""
    try:
        doc = flagfile.load(path)
    except flagfile.FlagFileError as exc:
        return {
            "ok": False,
            "error": str(exc),
            "on": False,
            "corridor": corridor,
            "stage": "off (flag file unusable: services fail closed)",
            "rows": [],
        }
    keys = flag_keys(corridor)
    by_role = dict(zip(SETTINGS, keys.all(), strict=True))
    rows: dict[str, FlagRow] = {}
    env_values: dict[str, object] = {
        "enabled": defaults.enabled,
        "sample-rate": defaults.sample_rate,
        "timeout-ms": defaults.timeout_ms,
        "profile-id": defaults.profile_id or "",
        "mode": defaults.mode.value,
        "review-enabled": False,
    }
    for role, key in by_role.items():
        flag = doc.flags.get(key)
        served, note = flagfile.served_value(flag)
        if served is None and role not in _ENV_NAMES:  # no variable: the code's default
            raw, source = env_values[role], "default (off)"
        elif served is None:
            raw, source = env_values[role], f"environment default ({_ENV_NAMES[role]})"
        else:
            variant = flag.default_variant if flag is not None else None
            raw, source = served, f"flag file, variant {variant!r}"
        rows[role] = FlagRow(key, _parse(role, raw, defaults), served, source, note)
    file_rate = float(rows["sample-rate"].value)  # type: ignore[arg-type]  # the sample-rate row holds a float
    file_values = _flag_values(rows)
    cap = corridor_mode_cap(corridor)
    per_field = ceilinged(file_values, defaults, keys=keys, mode_cap=cap)
    effective = apply_ceiling(file_values, defaults, keys=keys, mode_cap=cap)
    for role, (value, by) in (
        ("enabled", per_field.enabled),
        ("sample-rate", per_field.sample_rate),
        ("timeout-ms", per_field.timeout_ms),
        ("profile-id", per_field.profile_id),
    ):
        if by.startswith("env ") and rows[role].served is not None:  # the variable holds it
            rows[role] = replace(
                rows[role], value=value if value is not None else "", limited_by=by
            )
    enabled, rate = per_field.enabled[0], per_field.sample_rate[0]
    on = effective.enabled
    changed_at = None
    rate_flag = doc.flags.get(keys.sample_rate)
    if rate_flag is not None and rate_flag.metadata:
        changed = rate_flag.metadata.get("changedAt")
        changed_at = changed if isinstance(changed, str) else None
    why_off = "" if on else _why_off(dict(effective.limits)["enabled"], keys)
    return {
        "ok": True,
        "error": "",
        "corridor": corridor,
        "risk_class": CORRIDOR_ALLOWLIST[corridor].value,
        "mode": effective.mode.value,
        "mode_capped": effective.mode_capped,
        "on": on,
        "enabled": enabled,
        "why_off": why_off,
        "sample_rate": rate,
        "stage": stage_label(on, rate),
        "stage_number": stage_number(rate),
        "advance_to": next_rate(file_rate, "advance"),
        "retreat_to": next_rate(file_rate, "retreat"),
        "rate_changed_at": changed_at,
        "profiles": _variants(doc, keys.profile_id),
        "rows": [row.to_json() for row in rows.values()],
        "effective": {
            "enabled": effective.enabled,
            "sample_rate": effective.sample_rate,
            "timeout_ms": effective.timeout_ms,
            "profile_id": effective.profile_id,
        },
        # the console reads no policy file: a "policy file" limit would be a guess
        "limits": {k: v for k, v in effective.limits if v != "policy file"},
    }


def _flag_values(rows: dict[str, FlagRow]) -> FlagValues:
    """What the file serves, parsed (``None``: not served), for the ceiling."""

    def served(role: str) -> object:
        return rows[role].value if rows[role].served is not None else None

    enabled, rate = served("enabled"), served("sample-rate")
    timeout, profile = served("timeout-ms"), served("profile-id")
    mode, review = served("mode"), served("review-enabled")
    return FlagValues(
        enabled if isinstance(enabled, bool) else None,
        float(rate) if isinstance(rate, float | int) else None,
        timeout if isinstance(timeout, int) else None,
        profile if isinstance(profile, str) else None,
        mode if isinstance(mode, Mode) else None,
        review if isinstance(review, bool) else None,
    )


def _why_off(by: str, keys: FlagKeys | None = None) -> str:
    """The page's one line for why the corridor is off, from ``limits["enabled"]``."""
    if by == f"env {ENV_INTENT}":
        return f"{ENV_INTENT} is not on the allowlist"
    if by == f"env {ENV_ENABLED}":
        return f"{ENV_ENABLED} is set to false in the environment: a ceiling the flags cannot lift"
    if by == f"env {ENV_TIMEOUT_MS}":
        return f"{ENV_TIMEOUT_MS} is set to 0 or garbage in the environment: the corridor is off"
    k = keys or flag_keys(SHOPPING)
    if by == f"flag {k.timeout_ms}":
        return "the timeout is 0: the corridor is disabled"
    if by == f"flag {k.mode}":
        return f"the mode is off ({k.mode})"
    if by == "default":
        return f"{k.enabled} is not served and {ENV_ENABLED} is unset (default: off)"
    return f"the kill switch is on ({k.enabled} is false)"


def _parse(role: str, raw: object, defaults: EnvDefaults) -> object:
    """The runbook's run-time parsing (what a service does with a hand-edited value)."""
    if role in ("enabled", "review-enabled"):
        return raw is True
    if role == "sample-rate":
        return parse_sample_rate(raw, default=defaults.sample_rate)
    if role == "timeout-ms":
        return parse_timeout_ms(raw, default=defaults.timeout_ms)
    if role == "mode":
        return parse_mode(raw) if isinstance(raw, str) and raw.strip() else Mode.OFF
    return parse_profile_id(raw) or ""


def _variants(doc: flagfile.FlagdDocument, key: str) -> list[str]:
    flag = doc.flags.get(key)
    if flag is None:
        return []
    return sorted({v for v in flag.variants.values() if isinstance(v, str) and v})


class GateCache:
    """The gate verdict per corridor, recomputed at most every ``max_age_s`` (it reads the
    whole log); each corridor judged on its own records (``corridor_log``)."""

    def __init__(self, risk_log: Path | None, max_age_s: float = 30.0) -> None:
        self.risk_log = risk_log
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        #: corridor -> (key, computed at, value)
        self._cached: dict[str, tuple[tuple[object, ...], float, dict[str, Any]]] = {}

    def verdict(
        self, rate: float, on: bool, since: str | None, corridor: str = SHOPPING
    ) -> dict[str, Any]:
        """Blocking (file I/O): call it from a worker thread."""
        stage = gate_stage(rate) if on else None
        if stage is None:
            why = "the corridor is off" if not on else "below stage 1: no gate"
            return {"available": False, "why": why}
        if self.risk_log is None:
            return {"available": False, "why": "no risk log configured", "stage": stage}
        try:
            st = os.stat(self.risk_log)
        except OSError as exc:
            why = f"risk log {self.risk_log}: {exc.strerror}"
            return {"available": False, "why": why, "stage": stage}
        key = (stage, since, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._cached.get(corridor)
            if cached is not None:
                old, at, value = cached
                fresh = time.monotonic() - at < self.max_age_s
                if key == old or (fresh and key[:2] == old[:2]):
                    return value
            try:
                value = _evaluate(self.risk_log, stage, since, corridor)
            except Exception as exc:  # the analyzer is optional here: never break the page
                value = {"available": False, "why": f"gate failed: {exc}", "stage": stage}
            self._cached[corridor] = (key, time.monotonic(), value)
            return value


def _evaluate(risk_log: Path, stage: int, since: str | None, corridor: str) -> dict[str, Any]:
    from partial_trust.apps.analysis import gate
    from partial_trust.apps.analysis.figures import from_tally
    from partial_trust.apps.analysis.tally import Window, parse_time
    from partial_trust.apps.console.corridor_log import tally_corridor

    start = parse_time(since) if since else None
    tally = tally_corridor(risk_log, corridor, Window(start, None))
    figures = from_tally(tally)
    verdict, criteria, _ = gate.evaluate(figures, stage)
    return {
        "available": True,
        "stage": stage,
        "corridor": corridor,
        "verdict": verdict.value,
        "since": since,
        "sampled": figures.sampled,
        "computed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "criteria": [
            {"kind": c.kind, "text": c.text, "result": c.result.value, "value": c.value}
            for c in criteria
        ],
    }
