"""``partial-trust flags``: show, set, kill, resume, editing the flag file atomically.

``flags kill`` is the runbook's kill switch in one command and needs no restart: services on the
``file`` provider reload within ~50-300 ms. It works on a broken file too (unreadable, a FIFO or
device at the path, oversized, invalid): the path is then replaced by a fresh copy of the
shipped flag file with the switch off, and the output and the audit line say what was wrong.
``set`` and ``resume`` refuse a broken file (they would reset every other flag silently).
Exit codes: 0 done, 2 refused or failed (the file is then exactly as it was). ``--file``
defaults to ``PARTIAL_TRUST_FLAGS_FILE`` or the default path, the same rule the service uses.
Every change is also appended to the console's audit log (``PARTIAL_TRUST_FLAGS_AUDIT_LOG``)
with source ``cli``. ``flags serve`` runs the flag console (see ``apps/console/README.md``).

``--corridor NAME`` (default ``add_shopping_item``, any corridor on the code's allowlist)
chooses whose flags ``show``, ``kill``, ``resume`` and ``set`` act on; a corridor's keys follow
one rule (``partial_trust.corridors.flag_keys``): the shopping corridor keeps
``partial-trust-<setting>``, any other reads ``partial-trust.<corridor>.<setting>``. ``set``
takes either key form: ``flags set partial-trust-mode shadow --corridor show_shopping_list``
writes ``partial-trust.show_shopping_list.mode``. A mode the corridor's risk class or the
rollout order forbids (``admin`` past shadow; a higher class to canary before a lower one)
is refused (exit 2, file unchanged).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from partial_trust.apps.console import audit
from partial_trust.corridors import CORRIDOR_ALLOWLIST, SHOPPING, corridor_of_key, flag_keys
from partial_trust.environment import Environment
from partial_trust.flags import flagfile
from partial_trust.flags.provider import PROVIDER_ENV, flags_file_path

_RUNBOOK_NOTES = {
    flagfile.SAMPLE_RATE: "a float in [0, 1]; out of range is clamped at run time",
    flagfile.TIMEOUT_MS: "an int > 0; 0 or garbage turns the corridor off",
    flagfile.PROFILE_ID: "empty means the policy's default profile",
    flagfile.ENABLED: "true/false; anything else is false",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="partial-trust flags", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_)
        cmd.add_argument("--file", type=Path, default=None, help="flag file (flagd JSON)")
        cmd.add_argument(
            "--corridor",
            default=SHOPPING,
            choices=list(CORRIDOR_ALLOWLIST),
            help=f"whose flags (default {SHOPPING}; README, 'Corridors and risk classes')",
        )
        return cmd

    show = add("show", "print the flags as the file defines them")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    set_ = add("set", "pin one flag to a value (validated; atomic)")
    every_key = [k for name in CORRIDOR_ALLOWLIST for k in flag_keys(name).all()]
    set_.add_argument("key", choices=every_key, metavar="KEY")
    set_.add_argument("value")
    add("kill", "kill switch: partial-trust-enabled -> false, no restart").add_argument(
        "--reason", default=None
    )
    resume = add(
        "resume",
        "undo kill: partial-trust-enabled -> true, and (the playbook) the sample rate back to "
        "stage 1 (1%%); --keep-rate keeps the rate it had",
    )
    resume.add_argument("--reason", default=None)
    resume.add_argument(
        "--keep-rate",
        action="store_true",
        help="resume at the sample rate the corridor had, not at stage 1 (recorded in the audit)",
    )
    set_.add_argument("--reason", default=None, help="recorded in the flag's metadata")
    sub.add_parser("serve", help="the flag console (web UI); options: flags serve --help")
    return parser


def _show(path: Path, as_json: bool, env: Environment, corridor: str = SHOPPING) -> int:
    """The file's values, then the effective ones with THIS shell's environment ceilings
    (``partial_trust.config.apply_ceiling``; a service with other variables may differ)."""
    from partial_trust.apps.console import state

    doc = flagfile.load(path)
    seen = state.read_flags(path, env.defaults, corridor=corridor)
    limited = {row["key"]: row["limited_by"] for row in seen.get("rows", [])}
    rows = []
    keys = flag_keys(corridor).all()
    for key in keys:
        flag = doc.flags.get(key)
        value, note = flagfile.served_value(flag)
        variant = flag.default_variant if flag is not None else None
        row = {"flag": key, "value": value, "variant": variant, "note": note}
        rows.append({**row, "limited_by": limited.get(key, "")})
    effective = {**seen.get("effective", {}), "limits": seen.get("limits", {})}
    if as_json:
        out = {"file": str(path), "corridor": corridor, "flags": rows, "effective": effective}
        print(json.dumps(out, indent=2))
        return 0
    print(f"flag file: {path}  corridor: {corridor} ({CORRIDOR_ALLOWLIST[corridor].value})")
    width = max(len(key) for key in keys)
    for row in rows:
        shown = json.dumps(row["value"]) if row["value"] is not None else "-"
        extra = f"  ({row['note']})" if row["note"] else ""
        if row["limited_by"]:
            extra += f"  [limited by {row['limited_by']}]"
        print(f"  {row['flag']:<{width}}  {shown:<8} variant={row['variant']}{extra}")
    for key in (k for k in doc.flags if corridor_of_key(k) is None):
        print(f"  {key:<{width}}  (not a corridor flag; left as it is)")
    limits = effective["limits"]
    print("effective with this shell's PARTIAL_TRUST_* variables (set ones are ceilings):")
    for name in ("enabled", "sample_rate", "timeout_ms", "profile_id"):
        value = json.dumps(effective.get(name))
        print(f"  {name:<{width}}  {value:<8} decided by {limits.get(name, '-')}")
    return 0


def _key_for(key: str, corridor: str) -> str:
    """A shopping-form key with ``--corridor X`` names X's key of the same setting."""
    hit = corridor_of_key(key)
    if hit is None or hit[0] != SHOPPING or corridor == SHOPPING:
        return key
    from partial_trust.corridors import SETTINGS

    return flag_keys(corridor).all()[SETTINGS.index(hit[1])]


def _change(args: argparse.Namespace, path: Path, env: Environment) -> int:
    corridor = args.corridor
    if args.command == "kill":
        change = flagfile.kill(path, reason=args.reason, corridor=corridor)
    elif args.command == "resume":
        change = flagfile.resume(
            path, reason=args.reason, keep_rate=args.keep_rate, corridor=corridor
        )
    else:
        change = flagfile.set_flag(
            path, _key_for(args.key, corridor), args.value, reason=args.reason
        )
    if change.replaced is not None:
        print(f"the flag file was broken and has been replaced: {change.replaced}")
    print(
        f"{change.key}: {json.dumps(change.old)} -> {json.dumps(change.new)} "
        f"(variant {change.variant!r}) in {path}"
    )
    if change.rate is not None:
        old, new = change.rate
        how = (
            "kept" if change.kept_rate else "stage 1, the playbook's restart; --keep-rate keeps it"
        )
        print(f"{flag_keys(corridor).sample_rate}: {json.dumps(old)} -> {json.dumps(new)} ({how})")
    try:
        audit.record(audit.default_audit_path(env), change, reason=args.reason or "", source="cli")
    except OSError as exc:  # the change is made; a missing audit line must not hide that
        print(f"warning: the audit log was not written: {exc}", file=sys.stderr)
    if env.value(PROVIDER_ENV).lower() not in {"", "file"}:
        print(
            f"note: {PROVIDER_ENV}={env.get(PROVIDER_ENV)}: services not on the file "
            "provider do not read this file",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve":
        from partial_trust.apps import console

        return console.main(argv[1:])
    args = _parser().parse_args(argv)
    env = Environment.from_os()
    path = args.file.absolute() if args.file is not None else flags_file_path(env)
    try:
        if args.command == "show":
            return _show(path, args.json, env, args.corridor)
        return _change(args, path, env)
    except flagfile.FlagFileError as exc:
        note = _RUNBOOK_NOTES.get(args.key) if "key" in args else None
        hint = f"\nrules for {args.key}: {note}" if note else ""
        print(f"partial-trust flags {args.command}: refused: {exc}{hint}", file=sys.stderr)
        if args.command != "show":
            print("the flag file was left unchanged", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"partial-trust flags {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
