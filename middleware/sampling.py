"""Stable sampling and privacy-safe command keys.

Sampling must give the same answer for a command in every process, pod and restart, and be
monotone in the rate (a command sampled at 1% stays sampled at 5% and 10%), so it is a keyed
BLAKE2b hash of (corridor, command_id) mapped to [0, 1) and compared with the rate. Python's
``hash()`` is salted per process (PYTHONHASHSEED) and would not do.

``command_key`` is what the risk log stores instead of the id: a hash under a separate secret
key, so the log can join records of one command without ever holding the id itself.
"""

from __future__ import annotations

import hashlib
import logging
import os

logger = logging.getLogger("partial_trust.sampling")

_SAMPLING_KEY = b"partial-trust-corridor/sampling/v1"
_DEFAULT_HASH_KEY = b"partial-trust-corridor/command-key/v1"
_SCALE = float(1 << 64)
#: Keying BLAKE2b hashes the key block; ``copy()`` of a hasher that already did it is ~0.3 µs
#: cheaper per call on the hot path and gives the very same digest.
_SAMPLER = hashlib.blake2b(key=_SAMPLING_KEY, digest_size=8)


def sample_point(corridor: str, command_id: str) -> float:
    """Where this command falls in [0, 1) for this corridor; the same everywhere, always."""
    hasher = _SAMPLER.copy()
    hasher.update(f"{corridor}\x00{command_id}".encode())
    return int.from_bytes(hasher.digest(), "big") / _SCALE


def is_sampled(corridor: str, command_id: str, rate: float) -> bool:
    """Sampled iff the command's point lies below the rate: monotone in the rate."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return sample_point(corridor, command_id) < rate


class CommandKeyer:
    """Turns command ids into short keyed hashes for the risk log.

    The key comes from ``PARTIAL_TRUST_HASH_KEY``. Without it a built-in key is used and a
    warning is logged once: ids that are guessable could then be matched by anyone who has the
    package, so production deployments should set their own.
    """

    def __init__(self, key: bytes | None = None) -> None:
        if key is None:
            env = os.environ.get("PARTIAL_TRUST_HASH_KEY", "")
            if env:
                key = env.encode()
            else:
                logger.warning("PARTIAL_TRUST_HASH_KEY is not set; using the built-in key")
                key = _DEFAULT_HASH_KEY
        if not 1 <= len(key) <= 64:
            raise ValueError("PARTIAL_TRUST_HASH_KEY must be 1 to 64 bytes long")
        self._key = key
        self._hasher = hashlib.blake2b(key=key, digest_size=12)  # pre-keyed, see _SAMPLER

    def __call__(self, command_id: str) -> str:
        hasher = self._hasher.copy()
        hasher.update(command_id.encode())
        return hasher.hexdigest()
