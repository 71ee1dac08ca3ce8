"""The replay corpus: a JSON file of CommandDTOs, checked whole before anything is run.

A bad corpus must stop the replay with a message naming the file and the item (exit 2),
never half-run and report figures over whatever happened to parse.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from partial_trust.contracts import CommandDTO

SHIPPED_CORPUS = Path(__file__).parent / "corpus" / "shopping.json"


class CorpusError(ValueError):
    """The corpus cannot be read or is not a list of CommandDTOs (exit 2)."""


def load_corpus(path: str | Path) -> list[CommandDTO]:
    """A JSON list of CommandDTOs (or ``{"commands": [...]}``, or labelled entries
    ``{"id", "command", "expected", ...}``: the command is replayed); ids must be unique."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read the corpus ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise CorpusError(f"{path}: not JSON ({exc})") from None
    if isinstance(raw, dict) and "commands" in raw:
        raw = raw["commands"]
    if not isinstance(raw, list) or not raw:
        raise CorpusError(f"{path}: expected a non-empty JSON list of commands")
    commands: list[CommandDTO] = []
    for index, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("command"), dict):
            item = item["command"]  # a labelled entry (bench corpus, ``review export``)
        try:
            commands.append(CommandDTO.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<item>"
            raise CorpusError(f"{path}: command #{index}: {where}: {first['msg']}") from None
    ids = Counter(c.command_id for c in commands)
    dupes = sorted(i for i, n in ids.items() if n > 1)
    if dupes:
        raise CorpusError(f"{path}: duplicate command_id(s): {', '.join(dupes[:5])}")
    return commands
