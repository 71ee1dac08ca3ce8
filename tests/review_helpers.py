"""Shared parts of the review store tests: a key, settings, canary commands, a running writer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from partial_trust.middleware.review import ReviewSettings
from partial_trust.middleware.review_writer import ReviewWriter

KEY = Fernet.generate_key().decode()
#: Strings that must appear in the store only (each checked whole and as 6-char windows).
CANARY_ITEM = "zqxwvbanana"
CANARY_ID = "cid-qpzmx-7731"
CANARY_USER = "uid-vwkrt-5519"


def review_settings(path: Path, key: str = KEY, **over: Any) -> ReviewSettings:
    return ReviewSettings(path=str(path), key=key, **over)


def canary_command(command_id: str = CANARY_ID) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "user_id": CANARY_USER,
        "text": f"add {CANARY_ITEM} and milk to my shopping list",
        "capabilities": ["start_job"],
        "context": {"default_list_id": "l-1", "lists": ["l-1", "l-2"]},
    }


def disagreeing_candidate(name: str = CANARY_ITEM) -> dict[str, Any]:
    """Accepted by every rule, but without the milk the baseline read: agreement false (an
    unnamed list would be refused: ``list_id_not_allowed``)."""
    return {
        "intent": "add_shopping_item",
        "job": {
            "job_type": "add_shopping_item",
            "payload": {"list_id": "l-1", "items": [{"name": name, "quantity": 1}]},
        },
        "confidence": 0.95,
    }


def started(settings: ReviewSettings) -> ReviewWriter:
    writer = ReviewWriter(settings)
    writer.start()
    assert writer.wait_ready(10.0)
    return writer


def flush(writer: ReviewWriter) -> None:
    """Wait until the writer's queue is empty and its last case is written."""
    deadline = time.monotonic() + 10.0
    while writer.status()["queue_depth"] and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()


def canary_windows(size: int = 6) -> set[str]:
    values = (CANARY_ITEM, CANARY_ID, CANARY_USER)
    return {v[i : i + size] for v in values for i in range(len(v) - size + 1)}


def leaks(text: str) -> list[str]:
    return sorted(w for w in canary_windows() if w in text)


def disk_bytes(directory: Path) -> bytes:
    """Every file under ``directory`` (the store, its WAL and shared-memory files)."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())
