"""The parts of a triage bundle, each collected on its own so one missing source never stops
the others (seed 002, "artifacts to retain for triage").

Every collector returns ``Part`` (a name, bytes, what it is) or raises ``Unavailable`` with a
reason that goes into the manifest. What is never collected: the risk log itself and the
flag file's raw text. The risk log is privacy-safe by design, but a bundle is mailed and
attached to tickets, so it carries the analyzer's figures, not lines; a flag file may hold
targeting rules naming users, so the bundle carries the effective values instead. ``/health``,
``/metrics`` (bounded enum labels only) and Prometheus' alert state hold no user data by the
project's contract, and the flag audit log records operators' changes, not users' commands.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from partial_trust.apps.analysis import gate as gate_mod
from partial_trust.apps.analysis import html
from partial_trust.apps.analysis.figures import Figures
from partial_trust.apps.analysis.stage_verdicts import Clock, every_stage, notes

#: The most a fetched document or the audit log may add to a bundle (its tail is kept).
MAX_PART_BYTES = 8 << 20
#: The package and the dependencies whose versions decide behaviour in an incident.
KEY_DEPENDENCIES = (
    "partial-trust-corridor",
    "starlette",
    "uvicorn",
    "httpx",
    "httpcore",
    "anyio",
    "pydantic",
    "prometheus-client",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "openfeature-sdk",
    "openfeature-provider-flagd",
    "PyYAML",
)


class Unavailable(Exception):
    """This part could not be collected; the message says why (it goes into the manifest)."""


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    what: str


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def analysis_parts(fig: Figures, clock: Clock) -> list[Part]:
    """The analyzer's JSON and HTML, and every stage's gate verdict as ``gate --stage N``
    gives it (run in-process: GO held until the stage's minimum duration, ``clock``)."""
    staged = every_stage(fig, clock)
    parts = [
        Part("analysis.json", _json(fig.to_json()), "analyzer figures (partial-trust analyze)"),
        Part(
            "analysis.html",
            html.render(fig, [v.gate for v in staged], notes=notes(staged)).encode(),
            "analyzer report with charts",
        ),
    ]
    why = gate_mod.unevaluable(fig)
    for v in staged:
        payload = {
            **v.to_json(),
            "cannot_evaluate": why,
            "criteria": [
                {
                    "kind": c.kind,
                    "criterion": c.text,
                    "value": c.value,
                    "result": c.result.value,
                    "detail": c.detail,
                }
                for c in v.criteria
            ],
            "manual_checks": list(gate_mod.STAGES[v.stage].manual),
        }
        parts.append(Part(f"gate-stage-{v.stage}.json", _json(payload), f"stage {v.stage} gate"))
    return parts


def audit_log(path: Path) -> Part:
    """The flag audit log (its last ``MAX_PART_BYTES``, cut at a line start)."""
    from partial_trust.flags.saferead import UnsafeFileError, read_regular

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Unavailable(f"{path}: {exc.strerror or exc}") from None
    try:
        if size <= MAX_PART_BYTES:
            data = read_regular(path, max_bytes=MAX_PART_BYTES, deadline_s=5.0)
        else:
            data = read_regular(path, max_bytes=size + (1 << 20), deadline_s=30.0)
            data = data[-MAX_PART_BYTES:]
            data = data[data.find(b"\n") + 1 :]
    except UnsafeFileError as exc:
        raise Unavailable(str(exc)) from None
    what = "flag audit log" + (" (tail)" if size > MAX_PART_BYTES else "")
    return Part("flag-audit.jsonl", data, what)


def effective_flags(path: Path) -> Part:
    """What the flag file serves now, per corridor flag (through the project's safe reader)."""
    from partial_trust.flags import flagfile

    try:
        doc = flagfile.load(path)
    except flagfile.FlagFileError as exc:
        raise Unavailable(str(exc)) from None
    rows = []
    for key in flagfile.KNOWN_FLAGS:
        flag = doc.flags.get(key)
        value, note = flagfile.served_value(flag)
        variant = flag.default_variant if flag is not None else None
        rows.append({"flag": key, "value": value, "variant": variant, "note": note})
    others = sorted(k for k in doc.flags if k not in flagfile.KNOWN_FLAGS)
    payload = {"file": str(path), "flags": rows, "other_flags": others}
    return Part("flags.json", _json(payload), "effective flags from the flag file")


def fetch(url: str, name: str, what: str, timeout_s: float, *, as_json: bool) -> Part:
    """GET ``url`` with a short timeout and a size cap; a JSON part must parse."""
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise Unavailable(f"GET {url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_PART_BYTES:
                    raise Unavailable(f"GET {url}: larger than {MAX_PART_BYTES} bytes")
            data = bytes(body)
    except httpx.HTTPError as exc:
        raise Unavailable(f"GET {url}: {type(exc).__name__}: {exc}") from None
    if as_json:
        try:
            data = _json(json.loads(data))
        except ValueError:
            raise Unavailable(f"GET {url}: not JSON") from None
    return Part(name, data, what)


def versions() -> Part:
    """Python, the platform, and the installed versions of the package and key dependencies."""
    packages: dict[str, str | None] = {}
    for name in KEY_DEPENDENCIES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    payload = {
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": packages,
    }
    return Part("versions.json", _json(payload), "python, platform and package versions")
